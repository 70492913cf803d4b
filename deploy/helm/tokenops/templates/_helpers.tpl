{{/* Names, labels and the pod parts every tokenops workload shares. */}}

{{- define "tokenops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tokenops.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "tokenops.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "tokenops.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; `component` is worker, sink-clickhouse, ... */}}
{{- define "tokenops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: tokenops
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "tokenops.selectorLabels" . }}
{{- end -}}

{{- define "tokenops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tokenops.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tokenops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tokenops.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tokenops.secretName" -}}
{{- default (printf "%s-secrets" (include "tokenops.fullname" .)) .Values.secret.existingSecret -}}
{{- end -}}

{{- define "tokenops.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The non-secret TOKENOPS_* settings every process reads (the settings ConfigMaps). */}}
{{- define "tokenops.settings" -}}
TOKENOPS_KAFKA_BOOTSTRAP_SERVERS: {{ .Values.kafka.bootstrapServers | quote }}
TOKENOPS_KAFKA_SECURITY_PROTOCOL: {{ .Values.kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol }}
TOKENOPS_KAFKA_SASL_MECHANISM: {{ .Values.kafka.saslMechanism | quote }}
{{- end }}
{{- if .Values.kafka.caSecret }}
TOKENOPS_KAFKA_SSL_CA_LOCATION: {{ printf "/etc/tokenops/kafka-ca/%s" .Values.kafka.caKey | quote }}
{{- end }}
TOKENOPS_TOPIC_PARTITIONS: {{ .Values.topics.partitions | quote }}
TOKENOPS_TOPIC_REPLICATION_FACTOR: {{ .Values.topics.replicationFactor | quote }}
TOKENOPS_CLICKHOUSE_URL: {{ .Values.clickhouse.url | quote }}
TOKENOPS_CLICKHOUSE_DATABASE: {{ .Values.clickhouse.database | quote }}
TOKENOPS_CLICKHOUSE_SCHEMA_VARIANT: {{ .Values.clickhouse.schemaVariant | quote }}
{{- if .Values.clickhouse.caSecret }}
TOKENOPS_CLICKHOUSE_CA_CERT: {{ printf "/etc/tokenops/clickhouse-ca/%s" .Values.clickhouse.caKey | quote }}
{{- end }}
TOKENOPS_CLICKHOUSE_PRICES_FILE: /etc/tokenops/prices/prices.yaml
TOKENOPS_WORKER_HTTP_PORT: {{ .Values.worker.port | quote }}
TOKENOPS_WORKER_STATE_DIR: /var/lib/tokenops/worker
TOKENOPS_CLICKHOUSE_HTTP_PORT: {{ .Values.sinks.clickhouse.port | quote }}
TOKENOPS_PROMETHEUS_SINK_PORT: {{ .Values.sinks.prometheus.port | quote }}
# Containers must listen on the pod's IP for probes, scrapes and Services.
TOKENOPS_WORKER_HTTP_HOST: "0.0.0.0"
TOKENOPS_CLICKHOUSE_HTTP_HOST: "0.0.0.0"
TOKENOPS_PROMETHEUS_SINK_HOST: "0.0.0.0"
# The root filesystem is read-only: scratch state goes to the /tmp emptyDir.
TOKENOPS_STACK_STATE_DIR: /tmp/tokenops
HOME: /tmp
{{- range $name, $value := .Values.extraEnv }}
{{ $name }}: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "tokenops.pricesYaml" -}}
{{- if .Values.prices -}}
{{ toYaml .Values.prices }}
{{- else -}}
{{ .Files.Get "files/prices.yaml" }}
{{- end -}}
{{- end -}}

{{- define "tokenops.quotasYaml" -}}
{{ toYaml (dict "quotas" .Values.quotas) }}
{{- end -}}

{{/* A checkov skip on every pod: settings are TOKENOPS_* variables by design. */}}
{{- define "tokenops.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_35=tokenops reads its credentials as TOKENOPS_* environment variables (pydantic settings); TLS material is mounted as files
{{- if not .Values.image.digest }}
checkov.io/skip2: CKV_K8S_43=the image is pinned by tag here; set image.digest to pin it by digest (ci/production-values.yaml does)
{{- end }}
{{- end -}}

{{/* Pod-level fields shared by every workload and the Job. */}}
{{- define "tokenops.podSpecCommon" -}}
serviceAccountName: {{ include "tokenops.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Container fields shared by every container: image, settings, hardening. */}}
{{- define "tokenops.containerCommon" -}}
image: {{ include "tokenops.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end -}}

{{/* Settings from a ConfigMap (`configMap`) and credentials from the Secret. */}}
{{- define "tokenops.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ .configMap }}
  - secretRef:
      name: {{ include "tokenops.secretName" .root }}
{{- end -}}

{{/* Mounts of every container: /tmp, prices, and the CAs when set. */}}
{{- define "tokenops.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: prices
  mountPath: /etc/tokenops/prices
  readOnly: true
{{- if .Values.kafka.caSecret }}
- name: kafka-ca
  mountPath: /etc/tokenops/kafka-ca
  readOnly: true
{{- end }}
{{- if .Values.clickhouse.caSecret }}
- name: clickhouse-ca
  mountPath: /etc/tokenops/clickhouse-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* Volumes for those mounts; `prices` names the ConfigMap holding prices.yaml. */}}
{{- define "tokenops.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .root.Values.tmpSizeLimit }}
- name: prices
  configMap:
    name: {{ .prices }}
{{- if .root.Values.kafka.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .root.Values.kafka.caSecret }}
{{- end }}
{{- if .root.Values.clickhouse.caSecret }}
- name: clickhouse-ca
  secret:
    secretName: {{ .root.Values.clickhouse.caSecret }}
{{- end }}
{{- end -}}
