{{- define "enh.reg" }}
{{- .Values.image.registry.host }}
{{- end }}
