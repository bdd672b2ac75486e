{{- define "sl.sortArg" -}}{{- $_ := sortAlpha . -}}{{- end -}}
