{{- define "aws-anomaly.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "aws-anomaly.labels" -}}
app.kubernetes.io/name: aws-anomaly
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "aws-anomaly.selector" -}}
app.kubernetes.io/name: aws-anomaly
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "aws-anomaly.tokenSecret" -}}
{{- default (printf "%s-token" (include "aws-anomaly.fullname" .)) .Values.token.existingSecret -}}
{{- end -}}
