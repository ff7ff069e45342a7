{{/* The chart name, or nameOverride. */}}
{{- define "agentmeter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* release-chart, or fullnameOverride; 63 characters at most (a DNS label). */}}
{{- define "agentmeter.fullname" -}}
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

{{- define "agentmeter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentmeter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "agentmeter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "agentmeter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: processor
{{- end -}}

{{/*
The API's resources: release-chart-api, and labels of their own. Its pods must not carry the processor's
selector labels (name and instance; the processor's Deployment selector cannot change on upgrade), or
the processor's Deployment, metrics Service and PodDisruptionBudget would count them: so another name.
The base is cut to 59 characters before "-api" is added, so a long release name cannot cut the suffix
off and give the API the processor's name.
*/}}
{{- define "agentmeter.apiFullname" -}}
{{- printf "%s-api" (include "agentmeter.fullname" . | trunc 59 | trimSuffix "-") -}}
{{- end -}}

{{- define "agentmeter.apiSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-api" (include "agentmeter.name" . | trunc 59 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "agentmeter.apiLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "agentmeter.apiSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: api
{{- end -}}

{{- define "agentmeter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "agentmeter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The credentials the processor reads from the Secret (pipeline/config.ts). */}}
{{- define "agentmeter.secretKeys" -}}
{{- list "MONGODB_URI" "CLICKHOUSE_PASSWORD" "KAFKA_SASL_PASSWORD" "AGENTMETER_OPERATOR_SECRET" | toJson -}}
{{- end -}}

{{/* The Secret the credentials come from: existingSecret, the chart's own, or none. */}}
{{- define "agentmeter.secretName" -}}
{{- if .Values.secret.existingSecret -}}
{{- .Values.secret.existingSecret -}}
{{- else if .Values.secret.values -}}
{{- include "agentmeter.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* The API's own variables the chart takes from api.config (pipeline/api/config.ts ServeConfigSchema;
AGENTMETER_API_HOST and AGENTMETER_API_PORT come from api.host and api.port, AGENTMETER_API_KEYS from a
Secret). */}}
{{- define "agentmeter.apiConfigKeys" -}}
{{- list "AGENTMETER_API_MAX_BATCH" "AGENTMETER_API_BODY_LIMIT" "AGENTMETER_API_SHUTDOWN_MS" "AGENTMETER_API_APP_OWNERS" | toJson -}}
{{- end -}}

{{/* The Secret AGENTMETER_API_KEYS comes from: api.keysSecret, else the credentials' Secret, else none
(the API then answers 401 on every /v1 route, and says so in its log and the NOTES). */}}
{{- define "agentmeter.apiKeysSecretName" -}}
{{- default (include "agentmeter.secretName" .) .Values.api.keysSecret -}}
{{- end -}}

{{/* env entries for the credentials' Secret keys, each optional (a missing one leaves the default).
Takes (dict "root" $ "keys" (list ...)); renders nothing without a Secret. */}}
{{- define "agentmeter.secretEnv" -}}
{{- $secretName := include "agentmeter.secretName" .root -}}
{{- if $secretName -}}
{{- range $key := .keys }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ $key }}
      optional: true
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Pod annotations: a changed ConfigMap or chart-made Secret rolls the pods (environment is read once
at start). */}}
{{- define "agentmeter.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}

{{/* The container's mounts and the pod's volumes: /tmp, the billing rules, the Kafka CA. */}}
{{- define "agentmeter.volumeMounts" -}}
# tsx compiles the TypeScript into a cache under the temporary directory.
- name: tmp
  mountPath: /tmp
{{- if .Values.billingConfig }}
- name: billing
  mountPath: {{ dir (include "agentmeter.billingConfigPath" .) }}
  readOnly: true
{{- end }}
{{- if .Values.kafkaCa.existingSecret }}
- name: kafka-ca
  mountPath: {{ dir (include "agentmeter.kafkaCaPath" .) }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "agentmeter.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .Values.billingConfig }}
- name: billing
  configMap:
    name: {{ include "agentmeter.fullname" . }}-billing
{{- end }}
{{- if .Values.kafkaCa.existingSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafkaCa.existingSecret }}
    items:
      - key: {{ .Values.kafkaCa.key }}
        path: {{ base (include "agentmeter.kafkaCaPath" .) }}
{{- end }}
{{- end -}}

{{/* Where the billing rules and the Kafka CA are mounted. */}}
{{- define "agentmeter.billingConfigPath" -}}/etc/agentmeter/billing/billing.json{{- end -}}
{{- define "agentmeter.kafkaCaPath" -}}/etc/agentmeter/kafka-ca/ca.crt{{- end -}}

{{/* Refuses values that cannot work, each with a message saying what to change. */}}
{{- define "agentmeter.validate" -}}
{{- $partitions := int (default "6" (get .Values.config "AGENTMETER_PARTITIONS")) -}}
{{- if gt (int .Values.replicaCount) $partitions -}}
{{- fail (printf "replicaCount %d is more than config.AGENTMETER_PARTITIONS %d: at most one processor per partition is busy" (int .Values.replicaCount) $partitions) -}}
{{- end -}}
{{- if le (int .Values.terminationGracePeriodSeconds) 75 -}}
{{- fail "terminationGracePeriodSeconds must be more than 75: a processor stops within 75 s of SIGTERM (drains for up to 30 s, then waits for abandoned publishes, then leaves the group)" -}}
{{- end -}}
{{- $port := int .Values.metrics.port -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail "metrics.port must be 1-65535: the probes and the ServiceMonitor use it" -}}
{{- end -}}
{{- range $key := include "agentmeter.secretKeys" . | fromJsonArray -}}
{{- if hasKey $.Values.config $key -}}
{{- fail (printf "config.%s is a credential: put it in the Secret (secret.existingSecret or secret.values)" $key) -}}
{{- end -}}
{{- end -}}
{{- range $key := list "AGENTMETER_METRICS_PORT" "AGENTMETER_METRICS_HOST" "AGENTMETER_BILLING_CONFIG" "KAFKA_SSL_CA_FILE" -}}
{{- if hasKey $.Values.config $key -}}
{{- fail (printf "config.%s is set by the chart (metrics.port, metrics.host, billingConfig, kafkaCa): remove it from config" $key) -}}
{{- end -}}
{{- end -}}
{{- range $key, $value := .Values.config -}}
{{- if hasPrefix "AGENTMETER_API_" $key -}}
{{- fail (printf "config.%s is the API's: set it under api (api.config, api.host, api.port; AGENTMETER_API_KEYS in a Secret)" $key) -}}
{{- end -}}
{{- end -}}
{{- range $key, $value := .Values.secret.values -}}
{{- if not (or (has $key (include "agentmeter.secretKeys" $ | fromJsonArray)) (eq $key "AGENTMETER_API_KEYS")) -}}
{{- fail (printf "secret.values.%s is not a credential the processor or the API reads" $key) -}}
{{- end -}}
{{- end -}}
{{- if .Values.api.enabled -}}
{{- include "agentmeter.validateApi" . -}}
{{- end -}}
{{- end -}}

{{/* The API's refusals, when api.enabled. */}}
{{- define "agentmeter.validateApi" -}}
{{- $port := int .Values.api.port -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail "api.port must be 1-65535: the Service and the probes use it" -}}
{{- end -}}
{{- range $key, $value := .Values.api.config -}}
{{- if and (ne $key "AGENTMETER_API_APP_OWNERS") (not (regexMatch "^[0-9]+$" (toString $value))) -}}
{{- fail (printf "api.config.%s must be a whole number, as a string (e.g. \"15000\"): the API refuses anything else at start" $key) -}}
{{- end -}}
{{- if not (has $key (include "agentmeter.apiConfigKeys" $ | fromJsonArray)) -}}
{{- fail (printf "api.config.%s is not a setting the chart takes there (AGENTMETER_API_HOST and AGENTMETER_API_PORT: api.host and api.port; AGENTMETER_API_KEYS: a Secret; the pipeline's variables: config)" $key) -}}
{{- end -}}
{{- end -}}
{{- range $key := list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" -}}
{{- if hasKey $.Values.api.podLabels $key -}}
{{- fail (printf "api.podLabels.%s is set by the chart (the API's selector, kept apart from the processor's)" $key) -}}
{{- end -}}
{{- end -}}
{{- $shutdownMs := int (default "15000" (get .Values.api.config "AGENTMETER_API_SHUTDOWN_MS")) -}}
{{- if le (mul (int .Values.api.terminationGracePeriodSeconds) 1000) $shutdownMs -}}
{{- fail (printf "api.terminationGracePeriodSeconds must be more than api.config.AGENTMETER_API_SHUTDOWN_MS (%d ms): the API waits that long for requests in flight after SIGTERM" $shutdownMs) -}}
{{- end -}}
{{- end -}}
