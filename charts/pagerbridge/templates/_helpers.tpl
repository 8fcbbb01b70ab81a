{{/*
Names and labels shared by every template.
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "pagerbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: fullnameOverride, else the release name when it
already contains the chart name, else "<release>-<chart>". 63 characters at most (DNS label).
*/}}
{{- define "pagerbridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pagerbridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator pod; never change them (Deployment selectors are immutable). */}}
{{- define "pagerbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pagerbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "pagerbridge.labels" -}}
helm.sh/chart: {{ include "pagerbridge.chart" . }}
{{ include "pagerbridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pagerbridge
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "pagerbridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pagerbridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "pagerbridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Namespaces the operator watches with rbac.scope=namespace, as a JSON list (default: the
release namespace). With rbac.scope=cluster, watchNamespaces must be empty.
*/}}
{{- define "pagerbridge.watchNamespaces" -}}
{{- if eq .Values.rbac.scope "cluster" }}
{{- if .Values.watchNamespaces }}
{{- fail "watchNamespaces is only used with rbac.scope=namespace (rbac.scope=cluster watches every namespace)" }}
{{- end }}
{{- list | toJson }}
{{- else }}
{{- default (list .Release.Namespace) .Values.watchNamespaces | toJson }}
{{- end }}
{{- end }}
