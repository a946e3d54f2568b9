{{/*
Static UI files: every file under files/ui (a symlink to the repository's ui/) except nginx.conf.
ConfigMap keys cannot hold "/", so a file's key is its path with "/" written as "__"; the volume's items
put each key back at its path. Text files go to data, anything else to binaryData.
*/}}
{{- define "churnguard.uiFiles" -}}
{{- $files := dict }}
{{- range $path, $_ := .Files.Glob "files/ui/**" }}
{{- $rel := trimPrefix "files/ui/" $path }}
{{- if and (ne $rel "nginx.conf") (not (hasPrefix "." (base $rel))) }}
{{- $_ := set $files $rel (replace "/" "__" $rel) }}
{{- end }}
{{- end }}
{{- toYaml $files }}
{{- end }}

{{- define "churnguard.uiTextExtensions" -}}
[".html", ".htm", ".css", ".js", ".mjs", ".json", ".map", ".svg", ".txt", ".webmanifest", ".xml"]
{{- end }}

{{/* data/binaryData of the UI files ConfigMap; call with (list $root $files $textExtensions). */}}
{{- define "churnguard.uiStatic" -}}
{{- $root := index . 0 }}{{- $files := index . 1 }}{{- $text := index . 2 }}
{{- $data := dict }}{{- $binary := dict }}
{{- range $path, $key := $files }}
{{- if has (ext $path | lower) $text }}
{{- $_ := set $data $key ($root.Files.Get (printf "files/ui/%s" $path)) }}
{{- else }}
{{- $_ := set $binary $key ($root.Files.Get (printf "files/ui/%s" $path) | b64enc) }}
{{- end }}
{{- end }}
{{- if $data }}
data:
{{- range $key, $content := $data }}
  {{ $key }}: {{ $content | toJson }}
{{- end }}
{{- end }}
{{- if $binary }}
binaryData:
{{- range $key, $content := $binary }}
  {{ $key }}: {{ $content }}
{{- end }}
{{- end }}
{{- end }}
