{{- define "hs.mode" -}}
{{- $_ := set . "mode" (ternary "external" "standalone" (eq .Values.backend "external")) -}}
{{- end -}}
{{- define "hs.image" -}}
{{- $_ := set .Values.image "full" (printf "%s:%s" .Values.image.repository .Values.image.tag) -}}
{{- end -}}
