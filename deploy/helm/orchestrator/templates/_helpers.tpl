{{- define "orchestrator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name when it holds the chart's, else release-chart. */}}
{{- define "orchestrator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The bundled NATS: short enough for StatefulSet pod and revision labels. */}}
{{- define "orchestrator.natsName" -}}
{{- printf "%s-nats" (include "orchestrator.fullname" . | trunc 45 | trimSuffix "-") -}}
{{- end -}}

{{- define "orchestrator.secretName" -}}
{{- default (include "orchestrator.fullname" .) .Values.secret.name -}}
{{- end -}}

{{- define "orchestrator.serviceAccountName" -}}
{{- default (include "orchestrator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "orchestrator.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tfe-orchestrator
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "orchestrator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orchestrator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "orchestrator.labels" -}}
{{ include "orchestrator.selectorLabels" . }}
{{ include "orchestrator.commonLabels" . }}
{{- end -}}

{{- define "orchestrator.natsSelectorLabels" -}}
app.kubernetes.io/name: nats
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "orchestrator.natsLabels" -}}
{{ include "orchestrator.natsSelectorLabels" . }}
{{ include "orchestrator.commonLabels" . }}
{{- end -}}

{{- define "orchestrator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Where the secret files are mounted in the orchestrator. */}}
{{- define "orchestrator.secretDir" -}}/etc/tfe-orchestrator/secrets{{- end -}}

{{/*
The secret files the orchestrator reads: each is one key of a Secret, mounted at
secretDir/path, and named to the daemon by an environment variable. `value` is the
field of secret.values that fills the key when the chart creates the Secret.
Rendered as YAML and read back with fromYaml.
*/}}
{{- define "orchestrator.secretFiles" -}}
{{- $secret := include "orchestrator.secretName" . -}}
{{- $k := .Values.secret.keys -}}
files:
{{- if .Values.tfe.token }}
  - {env: TFE_TOKEN_FILE, secret: {{ $secret | quote }}, key: {{ $k.tfeToken | quote }}, path: tfe-token, value: tfeToken}
{{- end }}
  - {env: ORCHESTRATOR_WEBHOOK_TOKEN_FILE, secret: {{ $secret | quote }}, key: {{ $k.webhookTokens | quote }}, path: webhook-tokens, value: webhookTokens}
{{- if .Values.api.readTokens }}
  - {env: ORCHESTRATOR_API_READ_TOKEN_FILE, secret: {{ $secret | quote }}, key: {{ $k.apiReadTokens | quote }}, path: api-read-tokens, value: apiReadTokens}
{{- end }}
{{- if .Values.api.operateTokens }}
  - {env: ORCHESTRATOR_API_OPERATE_TOKEN_FILE, secret: {{ $secret | quote }}, key: {{ $k.apiOperateTokens | quote }}, path: api-operate-tokens, value: apiOperateTokens}
{{- end }}
{{- if .Values.alerts.slack }}
  - {env: ORCHESTRATOR_ALERT_SLACK_URL_FILE, secret: {{ $secret | quote }}, key: {{ $k.alertSlackURL | quote }}, path: alert-slack-url, value: alertSlackURL}
{{- end }}
{{- if .Values.alerts.webhook }}
  - {env: ORCHESTRATOR_ALERT_WEBHOOK_URL_FILE, secret: {{ $secret | quote }}, key: {{ $k.alertWebhookURL | quote }}, path: alert-webhook-url, value: alertWebhookURL}
{{- end }}
{{- if .Values.nats.bundled }}
  - {env: NATS_NKEY, secret: {{ $secret | quote }}, key: {{ $k.natsNKeySeed | quote }}, path: nats-nkey.seed, value: natsNKeySeed}
{{- else }}
{{- $ext := .Values.nats.external }}
{{- $natsSecret := default $secret $ext.existingSecret }}
{{- if $ext.credsKey }}
  - {env: NATS_CREDS, secret: {{ $natsSecret | quote }}, key: {{ $ext.credsKey | quote }}, path: nats.creds}
{{- end }}
{{- if $ext.nkeySeedKey }}
  - {env: NATS_NKEY, secret: {{ $natsSecret | quote }}, key: {{ $ext.nkeySeedKey | quote }}, path: nats-nkey.seed}
{{- end }}
{{- if $ext.passwordKey }}
  - {env: NATS_PASSWORD_FILE, secret: {{ $natsSecret | quote }}, key: {{ $ext.passwordKey | quote }}, path: nats-password}
{{- end }}
{{- if $ext.tokenKey }}
  - {env: NATS_TOKEN_FILE, secret: {{ $natsSecret | quote }}, key: {{ $ext.tokenKey | quote }}, path: nats-token}
{{- end }}
{{- with $ext.tls }}
{{- $tlsSecret := default $natsSecret .existingSecret }}
{{- if .caKey }}
  - {env: NATS_TLS_CA, secret: {{ $tlsSecret | quote }}, key: {{ .caKey | quote }}, path: nats-ca.crt}
{{- end }}
{{- if .certKey }}
  - {env: NATS_TLS_CERT, secret: {{ $tlsSecret | quote }}, key: {{ .certKey | quote }}, path: nats-client.crt}
{{- end }}
{{- if .keyKey }}
  - {env: NATS_TLS_KEY, secret: {{ $tlsSecret | quote }}, key: {{ .keyKey | quote }}, path: nats-client.key}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Refuses values that would render a setup that cannot work. */}}
{{- define "orchestrator.validate" -}}
{{- if lt (int .Values.replicaCount) 1 -}}
{{- fail "replicaCount must be at least 1" -}}
{{- end -}}
{{- if lt (int .Values.nats.streamReplicas) 1 -}}
{{- fail "nats.streamReplicas must be at least 1" -}}
{{- end -}}
{{- if .Values.nats.bundled -}}
{{- if gt (int .Values.nats.streamReplicas) (int .Values.nats.replicas) -}}
{{- fail (printf "nats.streamReplicas (%d) cannot exceed the bundled cluster's nats.replicas (%d)" (int .Values.nats.streamReplicas) (int .Values.nats.replicas)) -}}
{{- end -}}
{{- else -}}
{{- if not .Values.nats.external.url -}}
{{- fail "nats.external.url is required when nats.bundled is false" -}}
{{- end -}}
{{- $ext := .Values.nats.external -}}
{{- if and .Values.secret.create (or $ext.credsKey $ext.nkeySeedKey $ext.passwordKey $ext.tokenKey) (not $ext.existingSecret) -}}
{{- fail "nats.external.existingSecret is required for the external NATS's credentials when secret.create is true" -}}
{{- end -}}
{{- if and .Values.secret.create (or $ext.tls.caKey $ext.tls.certKey $ext.tls.keyKey) (not (or $ext.tls.existingSecret $ext.existingSecret)) -}}
{{- fail "nats.external.tls.existingSecret is required for the external NATS's TLS files when secret.create is true" -}}
{{- end -}}
{{- if and .Values.nats.external.passwordKey (not .Values.nats.external.user) -}}
{{- fail "nats.external.passwordKey needs nats.external.user" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) -}}
{{- fail "ingress.host is required when ingress.enabled is true" -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.httpFrom) -}}
{{- fail "networkPolicy.httpFrom is empty: list the sources admitted to the orchestrator's HTTP port (an empty list would admit nobody, not even TFE's notifications)" -}}
{{- end -}}
{{- $managed := list "NATS_URL" "NATS_USER" "ORCHESTRATOR_EMBEDDED_NATS_LISTEN" "ORCHESTRATOR_STREAM_REPLICAS" "ORCHESTRATOR_HTTP_LISTEN" "ORCHESTRATOR_LOG_FORMAT" "ORCHESTRATOR_LOG_LEVEL" "TFE_ADDRESS" "ORCHESTRATOR_TFE_RATE_LIMIT" -}}
{{- range $name, $value := .Values.extraEnv -}}
{{- if has $name $managed -}}
{{- fail (printf "extraEnv.%s is set by the chart from its own value (see values.yaml)" $name) -}}
{{- end -}}
{{- if regexMatch "(TOKEN|PASSWORD|URL|NKEY|CREDS|KEY|FILE)$" $name -}}
{{- fail (printf "extraEnv.%s is a secret or a secret's file: give it through the Secret (secret.keys), not a value" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The bundled NATS's configuration (its ConfigMap, and a checksum that rolls the pods). */}}
{{- define "orchestrator.natsConf" -}}
server_name: $POD_NAME
listen: 0.0.0.0:4222
http: 0.0.0.0:8222
authorization {
  users: [
    {nkey: $NATS_NKEY_PUBLIC}
  ]
}
jetstream {
  store_dir: /data/jetstream
  max_file_store: {{ .Values.nats.jetstream.maxFileStore }}
  max_memory_store: {{ .Values.nats.jetstream.maxMemoryStore }}
}
{{- $nats := include "orchestrator.natsName" . }}
{{- if gt (int .Values.nats.replicas) 1 }}
cluster {
  name: {{ $nats }}
  listen: 0.0.0.0:6222
  routes: [
    {{- range $i := until (int .Values.nats.replicas) }}
    nats-route://{{ $nats }}-{{ $i }}.{{ $nats }}-cluster:6222
    {{- end }}
  ]
}
{{- end }}
{{- end -}}
