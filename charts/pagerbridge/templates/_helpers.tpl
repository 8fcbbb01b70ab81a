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

{{/*
commonLabels under global.commonLabels (an umbrella chart's), as a JSON object; the
chart's own labels are merged over them, so they can add labels but never change the
chart's.
*/}}
{{- define "pagerbridge.commonLabels" -}}
{{- $global := default (dict) .Values.global }}
{{- merge (dict) (default (dict) .Values.commonLabels) (default (dict) $global.commonLabels) | toJson }}
{{- end }}

{{/* The labels of one component (a dict: "context" the root, "component" its name). */}}
{{- define "pagerbridge.componentLabels" -}}
{{- $ := .context }}
{{- $own := dict
  "helm.sh/chart" (include "pagerbridge.chart" $)
  "app.kubernetes.io/name" (include "pagerbridge.name" $)
  "app.kubernetes.io/instance" $.Release.Name
  "app.kubernetes.io/component" .component
  "app.kubernetes.io/version" $.Chart.AppVersion
  "app.kubernetes.io/managed-by" $.Release.Service
  "app.kubernetes.io/part-of" "pagerbridge" }}
{{- merge $own (include "pagerbridge.commonLabels" $ | fromJson) | toYaml }}
{{- end }}

{{/* Labels of the operator's objects: the chart's, then commonLabels. */}}
{{- define "pagerbridge.labels" -}}
{{- include "pagerbridge.componentLabels" (dict "context" . "component" "operator") }}
{{- end }}

{{/* Labels of the CRDs: app.kubernetes.io/version is the version that installed them. */}}
{{- define "pagerbridge.crdLabels" -}}
{{- include "pagerbridge.componentLabels" (dict "context" . "component" "crds") }}
{{- end }}

{{/* Labels of the operator pod: its objects' labels, then podLabels (which cannot change them). */}}
{{- define "pagerbridge.podLabels" -}}
{{- merge (include "pagerbridge.labels" . | fromYaml) (default (dict) .Values.podLabels) | toYaml }}
{{- end }}

{{/* imagePullSecrets: global.imagePullSecrets (an umbrella chart's), then the chart's. */}}
{{- define "pagerbridge.imagePullSecrets" -}}
{{- $global := default (dict) .Values.global }}
{{- concat (default (list) $global.imagePullSecrets) (default (list) .Values.imagePullSecrets) | uniq | toJson }}
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

{{/* The relay values that are set (non-empty), as JSON: PAGERBRIDGE_RELAY_DEFAULTS. */}}
{{- define "pagerbridge.relayDefaults" -}}
{{- $set := dict }}
{{- range $key, $value := omit .Values.relay "database" }}
{{- if $value }}
{{- $_ := set $set $key $value }}
{{- end }}
{{- end }}
{{- toJson $set }}
{{- end }}

{{/*
The account namespace of shared accounts (accounts.namespace, default: the release
namespace); empty when accounts are off. With rbac.scope=namespace it must be watched:
the relays of account-based integrations run there.
*/}}
{{- define "pagerbridge.accountNamespace" -}}
{{- if .Values.accounts.enabled }}
{{- $namespace := default .Release.Namespace .Values.accounts.namespace }}
{{- if ne .Values.rbac.scope "cluster" }}
{{- if not (has $namespace (include "pagerbridge.watchNamespaces" . | fromJsonArray)) }}
{{- fail (printf "accounts.namespace %s must be one of watchNamespaces with rbac.scope=namespace (the relays of account-based integrations run there)" $namespace) }}
{{- end }}
{{- end }}
{{- $namespace }}
{{- end }}
{{- end }}
