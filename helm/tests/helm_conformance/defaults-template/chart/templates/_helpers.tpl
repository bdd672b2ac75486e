{{- define "dt.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag }}{{- end }}
