{{- define "er.host" }}
{{ required "host is required!" .Values.host }}
{{- end }}
