{{- define "sm.setDot" }}{{ $_ := set . "mode" "from-helper" }}{{ end }}
{{- define "sm.setValues" }}{{ $_ := set .Values "injected" "yes" }}{{ $_ := set .Values.img "tag" "v2" }}{{ end }}
{{- define "sm.setDict" }}{{ $_ := set . "touched" true }}{{ $_ := unset . "drop" }}{{ end }}
{{- define "sm.mergeInto" }}{{ $_ := merge .dst .src }}{{ end }}
