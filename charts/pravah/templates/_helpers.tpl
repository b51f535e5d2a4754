{{/*
Object names are fixed (pravah-operator, pravah-api, ...), as in manifests/base: the CRD,
ClusterRoles and admission policy are cluster-wide, so one release serves the cluster.
*/}}

{{/* The labels Helm charts conventionally carry: who manages the object, which release. */}}
{{- define "pravah.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* Labels of every object's metadata (the kustomize base sets app.kubernetes.io/part-of). */}}
{{- define "pravah.labels" -}}
{{ include "pravah.helmLabels" . }}
app.kubernetes.io/part-of: pravah
{{- end }}

{{/* An image reference from {repository, tag, digest}: the digest, when set, pins it. */}}
{{- define "pravah.image" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- if $image.digest -}}
{{ $image.repository }}@{{ $image.digest }}
{{- else -}}
{{ $image.repository }}:{{ $image.tag | default $root.Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* Where runner pods report their shards: the operator's Service, by its fixed clusterIP
when one is set (clusters without DNS), else by its DNS name. */}}
{{- define "pravah.reportURL" -}}
{{- with .Values.operator.reportService.clusterIP -}}
http://{{ . }}:8082
{{- else -}}
http://pravah-operator.{{ .Release.Namespace }}.svc:8082
{{- end -}}
{{- end }}

{{/*
Scheduling of a component's pods (nodeSelector, tolerations, affinity, topology spread),
each only when set. Argument: the component's values.
*/}}
{{- define "pravah.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Pod annotations: Prometheus scraping of the given port, and a checksum of the ConfigMaps the
pods read their settings from, so that `helm upgrade` rolls them when a setting changes.
Arguments: the root context and the metrics port.
*/}}
{{- define "pravah.podAnnotations" -}}
{{- $root := index . 0 -}}
checksum/config: {{ include (print $root.Template.BasePath "/config.yaml") $root | sha256sum }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ index . 1 | quote }}
prometheus.io/path: /metrics
{{- end }}

{{/*
The annotations of a `helm test` hook: created by `helm test` in the order of the given
weight, replaced by the next run, deleted once it passed (kept for reading when it failed).
*/}}
{{- define "pravah.testHook" -}}
helm.sh/hook: test
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end }}
