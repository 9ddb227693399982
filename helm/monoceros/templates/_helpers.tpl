{{/*
Names, labels and the values the templates share. Every define is namespaced `monoceros.`.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "monoceros.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The full name of the release's resources (63 characters at most). */}}
{{- define "monoceros.fullname" -}}
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

{{/* Labels on every resource (Helm's labels.md). */}}
{{- define "monoceros.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "monoceros.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The labels that select the pods (immutable in a Deployment: name and instance only). */}}
{{- define "monoceros.selectorLabels" -}}
app.kubernetes.io/name: {{ include "monoceros.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* metadata.annotations with commonAnnotations merged into `extra` (a dict). */}}
{{- define "monoceros.annotations" -}}
{{- $all := merge (dict) (default (dict) .extra) (default (dict) .context.Values.commonAnnotations) -}}
{{- with $all -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The label that lets a pod in the release namespace through the NetworkPolicy. */}}
{{- define "monoceros.clientLabel" -}}
{{ include "monoceros.fullname" . }}-client
{{- end -}}

{{/* The admin listener's Service (metrics-service.yaml). */}}
{{- define "monoceros.metricsServiceName" -}}
{{- printf "%s-metrics" (include "monoceros.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{/*
The PromQL label matchers of this release's series, as a ServiceMonitor on the metrics Service
labels them: what the PrometheusRule puts in place of the Compose stack's job="monoceros".
*/}}
{{- define "monoceros.metricsSelector" -}}
{{- printf "namespace=%q, service=%q" .Release.Namespace (include "monoceros.metricsServiceName" .) -}}
{{- end -}}

{{- define "monoceros.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "monoceros.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* registry/repository:tag, or @digest when a digest is set; the tag defaults to appVersion. */}}
{{- define "monoceros.image" -}}
{{- $repository := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repository = printf "%s/%s" .Values.image.registry .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag | toString) -}}
{{- end -}}
{{- end -}}

{{/*
A value as the server reads it from the environment: whole numbers without an exponent (YAML
numbers reach templates as float64, and 104857600 would print as 1.048576e+08), booleans as
true/false.
*/}}
{{- define "monoceros.envValue" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) -}}
{{- if eq (float64 .) (floor .) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/*
The MONOCEROS_* environment of the server container, as YAML (name: value): `app`, the listen and
admin addresses from containerPorts, and every non-null `server` option, its camelCase key turned
into MONOCEROS_SNAKE_CASE (timeoutGracefulShutdown -> MONOCEROS_TIMEOUT_GRACEFUL_SHUTDOWN).
*/}}
{{- define "monoceros.serverEnv" -}}
MONOCEROS_APP: {{ .Values.app | quote }}
MONOCEROS_HOST: "0.0.0.0"
MONOCEROS_PORT: {{ include "monoceros.envValue" .Values.containerPorts.http | quote }}
MONOCEROS_METRICS_HOST: "0.0.0.0"
MONOCEROS_METRICS_PORT: {{ include "monoceros.envValue" .Values.containerPorts.metrics | quote }}
{{- range $key, $value := .Values.server }}
{{- if not (kindIs "invalid" $value) }}
{{ printf "MONOCEROS_%s" (snakecase $key | upper) }}: {{ include "monoceros.envValue" $value | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
terminationGracePeriodSeconds: the shutdown delay, then the drain's bound, then a margin for the
lifespan shutdown and the exit. The kubelet's SIGKILL must never cut a drain short.
*/}}
{{- define "monoceros.terminationGracePeriodSeconds" -}}
{{- $delay := default 0 .Values.server.shutdownDelay -}}
{{- addf $delay .Values.server.timeoutGracefulShutdown .Values.terminationGracePeriodMargin | ceil | int64 -}}
{{- end -}}

{{/* Checks across values that the schema cannot express; every problem is reported at once. */}}
{{- define "monoceros.validateValues" -}}
{{- $problems := list -}}
{{- $server := .Values.server -}}
{{- if and .Values.ingress.enabled $server.proxyHeaders (not $server.forwardedAllowIps) -}}
{{- $problems = append $problems "ingress.enabled: set server.forwardedAllowIps to the network of the ingress controller pods (your cluster's pod CIDR, e.g. 10.244.0.0/16), or the app sees the controller's address as every client's" -}}
{{- end -}}
{{- if and $server.proxyProtocol (not $server.forwardedAllowIps) -}}
{{- $problems = append $problems "server.proxyProtocol: set server.forwardedAllowIps to the addresses the load balancer connects from (its subnets), or every connection from it is closed for a PROXY header it may not send" -}}
{{- end -}}
{{- if and .Values.httpRoute.enabled $server.proxyHeaders (not $server.forwardedAllowIps) -}}
{{- $problems = append $problems "httpRoute.enabled: set server.forwardedAllowIps to the network of the Gateway's pods (your cluster's pod CIDR, e.g. 10.244.0.0/16), or the app sees the Gateway's address as every client's" -}}
{{- end -}}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) -}}
{{- $problems = append $problems "httpRoute.parentRefs: name the Gateway the route attaches to, e.g. [{name: public, namespace: gateway-system}]" -}}
{{- end -}}
{{- if kindIs "invalid" $server.timeoutGracefulShutdown -}}
{{- $problems = append $problems "server.timeoutGracefulShutdown: must be set, it bounds the drain and terminationGracePeriodSeconds is derived from it" -}}
{{- end -}}
{{- if and (not (kindIs "invalid" $server.shutdownDelay)) .Values.readinessProbe.enabled -}}
{{- if and (gt (float64 $server.shutdownDelay) 0.0) (ge (float64 (mul .Values.readinessProbe.periodSeconds .Values.readinessProbe.failureThreshold)) (float64 $server.shutdownDelay)) -}}
{{- $problems = append $problems "readinessProbe: periodSeconds x failureThreshold must be shorter than server.shutdownDelay, or the pod stops accepting before it is out of the endpoints" -}}
{{- end -}}
{{- end -}}
{{- if .Values.autoscaling.enabled -}}
{{- if lt .Values.autoscaling.maxReplicas .Values.autoscaling.minReplicas -}}
{{- $problems = append $problems "autoscaling: maxReplicas must not be below minReplicas" -}}
{{- end -}}
{{- if and (kindIs "invalid" .Values.autoscaling.targetCPU) (kindIs "invalid" .Values.autoscaling.targetMemory) -}}
{{- $problems = append $problems "autoscaling: set targetCPU, targetMemory or both" -}}
{{- end -}}
{{- $requests := default (dict) (default (dict) .Values.resources).requests -}}
{{- if and (not (kindIs "invalid" .Values.autoscaling.targetCPU)) (not $requests.cpu) -}}
{{- $problems = append $problems "autoscaling.targetCPU: needs resources.requests.cpu (utilization is a share of the request)" -}}
{{- end -}}
{{- if and (not (kindIs "invalid" .Values.autoscaling.targetMemory)) (not $requests.memory) -}}
{{- $problems = append $problems "autoscaling.targetMemory: needs resources.requests.memory (utilization is a share of the request)" -}}
{{- end -}}
{{- end -}}
{{- $minAvailable := .Values.pdb.minAvailable -}}
{{- if and .Values.pdb.create (not .Values.autoscaling.enabled) (not (kindIs "invalid" $minAvailable)) (not (kindIs "string" $minAvailable)) -}}
{{- if ge (int64 $minAvailable) (int64 .Values.replicaCount) -}}
{{- $problems = append $problems "pdb.minAvailable: must be below replicaCount, or no pod may ever be evicted and node drains block" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.ingress.tls (not .Values.ingress.enabled) -}}
{{- $problems = append $problems "ingress.tls: needs ingress.enabled" -}}
{{- end -}}
{{- if and .Values.metrics.prometheusRule.enabled (not .Values.metrics.serviceMonitor.enabled) -}}
{{- $problems = append $problems "metrics.prometheusRule.enabled: needs metrics.serviceMonitor.enabled (the rules select this release's series by the namespace and service labels the ServiceMonitor gives them)" -}}
{{- end -}}
{{- if eq (int64 .Values.containerPorts.http) (int64 .Values.containerPorts.metrics) -}}
{{- $problems = append $problems "containerPorts: http and metrics must differ (the admin listener is never on the application port)" -}}
{{- end -}}
{{- if $problems -}}
{{- fail (printf "\nVALUES VALIDATION:\n  %s" (join "\n  " $problems)) -}}
{{- end -}}
{{- end -}}
