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
{{- range $key, $value := .Values.secret.values -}}
{{- if not (has $key (include "agentmeter.secretKeys" $ | fromJsonArray)) -}}
{{- fail (printf "secret.values.%s is not a credential the processor reads" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
