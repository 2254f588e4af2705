{{/*
Labels on every object: the ones the kustomize install has (app.kubernetes.io/name, and a
component where it names one), plus helm's own. Selectors use only the kustomize labels, so
that a kustomize install and a chart install select the same pods.
*/}}
{{- define "trustwatch.labels" -}}
app.kubernetes.io/name: trustwatch
{{ include "trustwatch.helmLabels" . }}
{{- end -}}

{{/* Helm's own labels (the generated CRDs carry no others). */}}
{{- define "trustwatch.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "trustwatch.selectorLabels" -}}
app.kubernetes.io/name: trustwatch
app.kubernetes.io/component: controller
{{- end -}}

{{- define "trustwatch.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/*
With webhook.certManager.enabled: cert-manager's CA injector fills the caBundle of both
webhook configurations from the Certificate trustwatch-webhook.
*/}}
{{- define "trustwatch.webhookAnnotations" -}}
{{- if .Values.webhook.certManager.enabled -}}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/trustwatch-webhook
{{- end -}}
{{- end -}}
