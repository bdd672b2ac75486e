{{- define "ro.who" }}parent{{ end }}
