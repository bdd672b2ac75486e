{{- define "ro.who" }}sub{{ end }}
