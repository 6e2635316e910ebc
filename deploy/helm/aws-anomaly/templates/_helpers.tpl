{{- define "aws-anomaly.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "aws-anomaly.labels" -}}
app.kubernetes.io/name: aws-anomaly
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "aws-anomaly.selector" -}}
app.kubernetes.io/name: aws-anomaly
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The token Secret: the user's existingSecret, or the one the chart creates. */}}
{{- define "aws-anomaly.tokenSecret" -}}
{{- default (printf "%s-token" (include "aws-anomaly.fullname" .)) .Values.token.existingSecret -}}
{{- end -}}

{{- define "aws-anomaly.tokenKey" -}}
{{- if .Values.token.existingSecret -}}{{ .Values.token.existingSecretKey | default "token" }}{{- else -}}token{{- end -}}
{{- end -}}

{{/* The service account the pod runs as: created (default: the release name), or an
existing one (default: the namespace's `default`). */}}
{{- define "aws-anomaly.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "aws-anomaly.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where users reach the service; alert and rule links point here. */}}
{{- define "aws-anomaly.externalUrl" -}}
{{- $inCluster := printf "http://%s.%s.svc:%v" (include "aws-anomaly.fullname" .) .Release.Namespace .Values.service.port -}}
{{- default $inCluster .Values.externalUrl | trimSuffix "/" -}}
{{- end -}}

{{/* One per-cluster sum of a kube-state-metrics selector. Series without the cluster label
(a Prometheus that watches one cluster) get it set to clusterName; label_replace's regex ""
matches only a missing (empty) label, so series that have one keep it. */}}
{{- define "aws-anomaly.clusterSum" -}}
{{- $p := .ctx.Values.prometheus -}}
{{- printf "sum by (%s) (label_replace(%s, %q, %q, %q, \"\"))" $p.clusterLabel .selector $p.clusterLabel $p.clusterName $p.clusterLabel -}}
{{- end -}}

{{- define "aws-anomaly.ratio" -}}
{{- printf "%s / %s" (include "aws-anomaly.clusterSum" (dict "ctx" .ctx "selector" .num)) (include "aws-anomaly.clusterSum" (dict "ctx" .ctx "selector" .den)) -}}
{{- end -}}

{{/* The default job's source: Prometheus (or AMP with SigV4), the three request ratios. */}}
{{- define "aws-anomaly.source" -}}
{{- $p := .Values.prometheus -}}
{{- $queries := dict
  "cluster_cpu_request_ratio" (include "aws-anomaly.ratio" (dict "ctx" . "num" "kube_pod_container_resource_requests{resource=\"cpu\"}" "den" "kube_node_status_allocatable{resource=\"cpu\"}"))
  "cluster_mem_request_ratio" (include "aws-anomaly.ratio" (dict "ctx" . "num" "kube_pod_container_resource_requests{resource=\"memory\"}" "den" "kube_node_status_allocatable{resource=\"memory\"}"))
  "cluster_pod_ratio" (include "aws-anomaly.ratio" (dict "ctx" . "num" "kube_pod_info" "den" "kube_node_status_allocatable{resource=\"pods\"}"))
-}}
{{- $src := dict "type" "prometheus" "url" (required "prometheus.url is required" $p.url) "entity_label" $p.clusterLabel "queries" $queries -}}
{{- if $p.sigv4.enabled -}}
{{- $_ := set $src "auth" (dict "type" "sigv4" "region" (required "prometheus.sigv4.region is required with prometheus.sigv4.enabled" $p.sigv4.region)) -}}
{{- end -}}
{{- toYaml $src -}}
{{- end -}}

{{/* The settings file (docs/configuration.md). */}}
{{- define "aws-anomaly.settings" -}}
{{- $service := dict "host" "0.0.0.0" "port" .Values.service.port "token_file" "/etc/aws-anomaly/token/token" "data_dir" "/var/lib/aws-anomaly" -}}
{{- $jobs := list -}}
{{- if .Values.job.enabled -}}
{{- $job := omit .Values.job "enabled" -}}
{{- if not $job.source -}}
{{- $_ := set $job "source" (include "aws-anomaly.source" . | fromYaml) -}}
{{- end -}}
{{- $notifiers := list -}}
{{- if .Values.alertmanager.enabled -}}
{{- $am := dict "type" "alertmanager" "url" (required "alertmanager.url is required with alertmanager.enabled" .Values.alertmanager.url) "dashboard_url" (include "aws-anomaly.externalUrl" .) -}}
{{- with .Values.alertmanager.labels -}}
{{- $_ := set $am "labels" . -}}
{{- end -}}
{{- $notifiers = append $notifiers $am -}}
{{- end -}}
{{- range .Values.notifiers -}}
{{- $n := merge (dict) . -}}
{{- if not (hasKey $n "dashboard_url") -}}
{{- $_ := set $n "dashboard_url" (include "aws-anomaly.externalUrl" $) -}}
{{- end -}}
{{- $notifiers = append $notifiers $n -}}
{{- end -}}
{{- $notifiers = concat (default (list) $job.notifiers) $notifiers -}}
{{- if $notifiers -}}
{{- $_ := set $job "notifiers" $notifiers -}}
{{- end -}}
{{- $jobs = append $jobs $job -}}
{{- end -}}
{{- $jobs = concat $jobs .Values.extraJobs -}}
{{- if not $jobs -}}
{{- fail "no job: set job.enabled or add extraJobs" -}}
{{- end -}}
{{- toYaml (dict "service" $service "jobs" $jobs) -}}
{{- end -}}
