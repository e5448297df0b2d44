{{- define "llmdispatcher.fullname" -}}
{{ .Release.Name }}-llmdispatcher
{{- end }}

{{- define "llmdispatcher.selectorLabels" -}}
app.kubernetes.io/name: llmdispatcher
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "llmdispatcher.labels" -}}
{{ include "llmdispatcher.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: llmdispatcher-{{ .Chart.Version }}
{{- end }}
