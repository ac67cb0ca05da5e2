{{/*
Names, labels, the rendered proxy config, and the proxy container used by both modes.

Every named template takes the chart's own context (.Values, .Release, .Chart). From a
parent chart that depends on gateway-proxy, pass the subchart's context:
  {{ include "gateway-proxy.sidecarContainer" (index .Subcharts "gateway-proxy") }}
*/}}

{{- define "gateway-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gateway-proxy.fullname" -}}
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

{{- define "gateway-proxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Recommended labels: https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/ */}}
{{- define "gateway-proxy.labels" -}}
helm.sh/chart: {{ include "gateway-proxy.chart" . }}
{{ include "gateway-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: proxy
app.kubernetes.io/part-of: gateway-proxy
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "gateway-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gateway-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gateway-proxy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gateway-proxy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gateway-proxy.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where the config (and the catalog override) are mounted in the proxy container. */}}
{{- define "gateway-proxy.configDir" -}}/etc/gateway-proxy{{- end }}

{{/* Where ledgerStorage is mounted: the directory of the message ledger's SQLite file. */}}
{{- define "gateway-proxy.ledgerDir" -}}/var/lib/gateway-proxy{{- end }}

{{/*
"true" when the message ledger keeps a SQLite file in the pod (config.ledger without
config.store: with a store the ledger lives in that Redis), so ledgerStorage is mounted.
*/}}
{{- define "gateway-proxy.ledgerFile" -}}
{{- if and (hasKey .Values.config "ledger") (not .Values.config.store) }}true{{- end }}
{{- end }}

{{/*
The proxy's config file (config/gateway-proxy.yaml format). In sidecar mode the app port
listens on loopback only: the app reaches it at localhost, and no other pod can use the
app's gateway credentials through it.
*/}}
{{- define "gateway-proxy.config" -}}
{{- $host := ternary "127.0.0.1" "0.0.0.0" (eq .Values.mode "sidecar") }}
{{- $cfg := dict "listen" (printf "%s:%d" $host (int .Values.ports.http)) }}
{{- $_ := set $cfg "admin_listen" (printf "0.0.0.0:%d" (int .Values.ports.admin)) }}
{{- $_ := set $cfg "log" .Values.config.log }}
{{- $_ := set $cfg "shutdown" .Values.config.shutdown }}
{{- with .Values.config.pool }}
{{- $_ := set $cfg "pool" . }}
{{- end }}
{{- with .Values.ports.inbound }}
{{- $_ := set $cfg "inbound_listen" (printf "0.0.0.0:%d" (int .)) }}
{{- end }}
{{- with .Values.tls.listenSecret }}
{{- $_ := set $cfg "listen_tls" (dict "cert_file" "/tls/listen/tls.crt" "key_file" "/tls/listen/tls.key") }}
{{- end }}
{{- range $key := list "listen_backlog" "max_in_flight" "client_timeout" "inbound" "clients" "store" }}
{{- if hasKey $.Values.config $key }}
{{- $_ := set $cfg $key (get $.Values.config $key) }}
{{- end }}
{{- end }}
{{- if hasKey .Values.config "ledger" }}
{{- $ledger := deepCopy (.Values.config.ledger | default dict) }}
{{- if include "gateway-proxy.ledgerFile" . }}
{{- $_ := set $ledger "path" (printf "%s/ledger.sqlite3" (include "gateway-proxy.ledgerDir" .)) }}
{{- end }}
{{- $_ := set $cfg "ledger" $ledger }}
{{- end }}
{{- if .Values.catalog.configMap }}
{{- $_ := set $cfg "catalog" (printf "%s/codes.yaml" (include "gateway-proxy.configDir" .)) }}
{{- end }}
{{- $_ := set $cfg "routes" (include "gateway-proxy.routes" . | fromYamlArray) }}
{{- toYaml $cfg }}
{{- end }}

{{/*
config.routes with config.routeOverrides merged in, as YAML. helm --set replaces a whole
list but merges maps, so routeOverrides (keys: route names) is how one route changes from
the command line: --set config.routeOverrides.mms.timeout.total=60. A key that names no
route fails rendering.
*/}}
{{- define "gateway-proxy.routes" -}}
{{- $overrides := .Values.config.routeOverrides | default dict }}
{{- $names := list }}
{{- $routes := list }}
{{- range .Values.config.routes }}
{{- $route := deepCopy . }}
{{- $names = append $names (toString .name) }}
{{- with get $overrides (toString .name) }}
{{- $route = mergeOverwrite $route (deepCopy .) }}
{{- end }}
{{- $routes = append $routes $route }}
{{- end }}
{{- range $name, $_ := $overrides }}
{{- if not (has $name $names) }}
{{- fail (printf "config.routeOverrides.%s: no route in config.routes is named %q (routes: %s)" $name $name (join ", " $names)) }}
{{- end }}
{{- end }}
{{- toYaml $routes }}
{{- end }}

{{/* Render-time checks shared by both modes; renders nothing, fails with a reason. */}}
{{- define "gateway-proxy.validate" -}}
{{- if eq (int .Values.ports.http) (int .Values.ports.admin) }}
{{- fail "ports.http and ports.admin must differ" }}
{{- end }}
{{- /* A bare name means Docker Hub's official-image namespace: never this image. */}}
{{- if not (contains "/" .Values.image.repository) }}
{{- fail (printf "image.repository %q names no registry, so the kubelet would pull docker.io/library/%s, which is not gateway-proxy: push your build and set image.repository to REGISTRY/PATH/gateway-proxy (for an image loaded into kind or minikube, write docker.io/library/%s)" .Values.image.repository .Values.image.repository .Values.image.repository) }}
{{- end }}
{{- $need := include "gateway-proxy.shutdownBudget" . | float64 }}
{{- if le (float64 .Values.terminationGracePeriodSeconds) $need }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed lifecycle.preStopSleepSeconds + config.shutdown.delay_seconds + config.shutdown.drain_seconds + 1 (%v), or Kubernetes kills the proxy mid-drain" .Values.terminationGracePeriodSeconds $need) }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not (or .Values.autoscaling.targetCPUUtilizationPercentage .Values.autoscaling.targetMemoryUtilizationPercentage)) }}
{{- fail "autoscaling: set targetCPUUtilizationPercentage and/or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- if and (eq .Values.mode "sidecar") .Values.serviceMonitor.enabled }}
{{- fail "serviceMonitor needs the standalone Service; in sidecar mode use podMonitor" }}
{{- end }}
{{- /* Every ${VAR} in the routes must reach the container's environment. */}}
{{- if not (and .Values.credentials.envFrom .Values.credentials.existingSecret) }}
{{- $provided := keys .Values.credentials.env }}
{{- range .Values.extraEnv }}
{{- $provided = append $provided .name }}
{{- end }}
{{- $missing := list }}
{{- range regexFindAll "\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}" (include "gateway-proxy.routes" .) -1 }}
{{- $var := trimSuffix "}" (trimPrefix "${" .) }}
{{- if not (has $var $provided) }}
{{- $missing = append $missing $var }}
{{- end }}
{{- end }}
{{- if $missing }}
{{- fail (printf "config.routes use ${%s}, but neither credentials.env nor extraEnv provides it (or set credentials.envFrom with credentials.existingSecret)" (join "}, ${" (uniq $missing))) }}
{{- end }}
{{- if and .Values.credentials.env (not .Values.credentials.existingSecret) }}
{{- fail "credentials.env maps keys of credentials.existingSecret: set existingSecret" }}
{{- end }}
{{- end }}
{{- include "gateway-proxy.validateRoutes" . }}
{{- include "gateway-proxy.validateTraffic" . }}
{{- include "gateway-proxy.validateLedger" . }}
{{- end }}

{{/*
The message ledger (README "Safe retries and delivery reports"). Its SQLite file is one
pod's: with several replicas an app's retry, or a relay's report, can reach a replica
whose file never saw the key or the message id, so the first would be sent again and the
second unmatched. Replicas share the ledger through config.store. What check-config also
refuses (require_idempotency_key without a ledger) fails here first, in the same words.
*/}}
{{- define "gateway-proxy.validateLedger" -}}
{{- $ledger := hasKey .Values.config "ledger" }}
{{- range $i, $route := include "gateway-proxy.routes" . | fromYamlArray }}
{{- if and $route.require_idempotency_key (not $ledger) }}
{{- fail (printf "config.routes[%d].require_idempotency_key: needs a ledger (config.ledger) to keep the keys in" $i) }}
{{- end }}
{{- end }}
{{- range $i, $client := .Values.config.clients | default list }}
{{- if and $client.webhook (not $ledger) }}
{{- fail (printf "config.clients[%d].webhook: needs a ledger (config.ledger): a report finds its client through the send the ledger remembers" $i) }}
{{- end }}
{{- end }}
{{- if and (include "gateway-proxy.ledgerFile" .) (eq .Values.mode "standalone") }}
{{- if .Values.autoscaling.enabled }}
{{- fail "config.ledger: autoscaling would run several replicas, each with its own SQLite ledger, so a retry or a delivery report reaching another replica would miss its key or its send: set config.store (redis://...) to share the ledger" }}
{{- end }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail (printf "config.ledger: replicaCount %d would give each replica its own SQLite ledger, so a retry or a delivery report reaching another replica would miss its key or its send: set config.store (redis://...) to share the ledger, or replicaCount: 1" (int .Values.replicaCount)) }}
{{- end }}
{{- end }}
{{- if and .Values.ledgerStorage.existingClaim (not (include "gateway-proxy.ledgerFile" .)) }}
{{- fail "ledgerStorage.existingClaim: only the SQLite ledger uses it (config.ledger without config.store)" }}
{{- end }}
{{- end }}

{{/*
Who may send, the callbacks' port and the TLS Secrets: what check-config refuses in
clients (duplicate names, routes that name no route), and what only the chart knows (the
ports, the mounts, the mode).
*/}}
{{- define "gateway-proxy.validateTraffic" -}}
{{- $inbound := .Values.ports.inbound }}
{{- if and (eq .Values.mode "sidecar") .Values.config.inbound (not $inbound) }}
{{- fail "config.inbound: in sidecar mode the http port listens on 127.0.0.1 only, so the relay cannot reach the callbacks there: set ports.inbound (the proxy's inbound_listen, e.g. 8082)" }}
{{- end }}
{{- if and $inbound (or (eq (int $inbound) (int .Values.ports.http)) (eq (int $inbound) (int .Values.ports.admin))) }}
{{- fail "ports.inbound must differ from ports.http and ports.admin" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (eq .Values.mode "sidecar") }}
{{- fail "networkPolicy selects the proxy's own pods (standalone mode); in sidecar mode the pods are your app's: write their NetworkPolicy with your app (docs/deployment.md)" }}
{{- end }}
{{- $routeNames := list }}
{{- range include "gateway-proxy.routes" . | fromYamlArray }}
{{- $routeNames = append $routeNames (toString .name) }}
{{- end }}
{{- $clients := dict }}
{{- range $i, $client := .Values.config.clients | default list }}
{{- $name := toString $client.name }}
{{- if hasKey $clients $name }}
{{- fail (printf "config.clients[%d].name: duplicate client name %q (also config.clients[%v])" $i $name (get $clients $name)) }}
{{- end }}
{{- $_ := set $clients $name $i }}
{{- range $j, $route := $client.routes | default list }}
{{- if not (has (toString $route) $routeNames) }}
{{- fail (printf "config.clients[%d].routes[%d]: no route is named %q (routes: %s)" $i $j $route (join ", " $routeNames)) }}
{{- end }}
{{- end }}
{{- end }}
{{- $mounts := dict }}
{{- range $i, $secret := .Values.tls.secrets }}
{{- if or (hasKey $mounts $secret.name) (eq $secret.name "listen") }}
{{- fail (printf "tls.secrets[%d].name: %q is already mounted at /tls/%s" $i $secret.name $secret.name) }}
{{- end }}
{{- $_ := set $mounts $secret.name $i }}
{{- end }}
{{- /* Every ${VAR} in clients and inbound must reach the container's environment too. */}}
{{- if not (and .Values.credentials.envFrom .Values.credentials.existingSecret) }}
{{- $provided := keys .Values.credentials.env }}
{{- range .Values.extraEnv }}
{{- $provided = append $provided .name }}
{{- end }}
{{- $missing := list }}
{{- $used := toYaml (dict "clients" .Values.config.clients "inbound" .Values.config.inbound) }}
{{- range regexFindAll "\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}" $used -1 }}
{{- $var := trimSuffix "}" (trimPrefix "${" .) }}
{{- if not (has $var $provided) }}
{{- $missing = append $missing $var }}
{{- end }}
{{- end }}
{{- if $missing }}
{{- fail (printf "config.clients or config.inbound use ${%s}, but neither credentials.env nor extraEnv provides it (or set credentials.envFrom with credentials.existingSecret)" (join "}, ${" (uniq $missing))) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The TLS Secrets' volumes (tls.secrets, tls.listenSecret), each mounted whole. */}}
{{- define "gateway-proxy.tlsSecrets" -}}
{{- $all := list }}
{{- range .Values.tls.secrets }}
{{- $all = append $all (dict "name" .name "secretName" .secretName) }}
{{- end }}
{{- with .Values.tls.listenSecret }}
{{- $all = append $all (dict "name" "listen" "secretName" .) }}
{{- end }}
{{- toYaml $all }}
{{- end }}

{{/*
What `gateway-proxy check-config` refuses in config.routes and JSON Schema cannot say, or
cannot say clearly: unique names, prefixes that neither repeat nor nest, timeout.connect within
timeout.total, header names (a
schema propertyNames error names no key) and the headers the proxy owns, and the parts of
an upstream URL (one readable reason each, rather than one unreadable regex). Messages
name the values key the way check-config names its key. values.schema.json covers the
rest (key names, enums, number ranges, the prefix's characters, header names and values).
tests/test_helm.py runs every case through both, so the two stay aligned.
*/}}
{{- define "gateway-proxy.validateRoutes" -}}
{{- $names := dict }}
{{- $seen := list }}
{{- $reserved := list "host" "content-length" "transfer-encoding" "connection" "x-request-id" }}
{{- range $i, $route := include "gateway-proxy.routes" . | fromYamlArray }}
{{- $key := printf "config.routes[%d]" $i }}
{{- $name := toString $route.name }}
{{- if hasKey $names $name }}
{{- fail (printf "%s.name: duplicate route name %q (also config.routes[%v]): every route needs its own name" $key $name (get $names $name)) }}
{{- end }}
{{- $_ := set $names $name $i }}
{{- /* The proxy compares prefixes without their trailing slashes, at segment boundaries. */}}
{{- $prefix := regexReplaceAll "/+$" (toString $route.path_prefix) "" | default "/" }}
{{- range $seen }}
{{- $under := ternary .prefix (printf "%s/" .prefix) (hasSuffix "/" .prefix) }}
{{- $mine := ternary $prefix (printf "%s/" $prefix) (hasSuffix "/" $prefix) }}
{{- if eq $prefix .prefix }}
{{- fail (printf "%s.path_prefix: duplicate path_prefix %q (also config.routes[%d]): a request could take either route" $key $route.path_prefix .index) }}
{{- else if or (hasPrefix $under $prefix) (hasPrefix $mine .prefix) }}
{{- fail (printf "%s.path_prefix: prefix %q overlaps config.routes[%d] (%q): one lies under the other at a path segment, so a request could match both" $key $route.path_prefix .index .prefix) }}
{{- end }}
{{- end }}
{{- $seen = append $seen (dict "prefix" $prefix "index" $i) }}
{{- range $header, $_ := $route.headers }}
{{- if not (regexMatch "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" $header) }}
{{- fail (printf "%s.headers.%s: is not a valid header name (an HTTP token: letters, digits and !#$%%&'*+.^_`|~-)" $key $header) }}
{{- end }}
{{- if has (lower $header) $reserved }}
{{- fail (printf "%s.headers.%s: is set by the proxy and cannot be configured" $key $header) }}
{{- end }}
{{- end }}
{{- /* timeout.total (default 30) bounds timeout.connect. */}}
{{- $timeout := $route.timeout | default dict }}
{{- $total := float64 (get $timeout "total" | default 30) }}
{{- if and (hasKey $timeout "connect") (gt (float64 $timeout.connect) $total) }}
{{- fail (printf "%s.timeout.connect: %v s is longer than timeout.total (%v s), which bounds it" $key $timeout.connect $total) }}
{{- end }}
{{- /* upstream or upstreams (exactly one), each endpoint its own host:port. */}}
{{- if and (hasKey $route "upstream") (hasKey $route "upstreams") }}
{{- fail (printf "%s.upstreams: give either upstream or upstreams, not both" $key) }}
{{- end }}
{{- if not (or (hasKey $route "upstream") (hasKey $route "upstreams")) }}
{{- fail (printf "%s.upstream: is required (or upstreams: a list of URLs)" $key) }}
{{- end }}
{{- $urls := list }}
{{- if hasKey $route "upstream" }}
{{- $urls = append $urls (dict "key" (printf "%s.upstream" $key) "url" (toString $route.upstream)) }}
{{- else }}
{{- range $j, $u := $route.upstreams }}
{{- $urls = append $urls (dict "key" (printf "%s.upstreams[%d]" $key $j) "url" (toString $u) "index" $j) }}
{{- end }}
{{- end }}
{{- $endpoints := dict }}
{{- range $urls }}
{{- $upstream := .url }}
{{- /* ${VAR} is filled in at start-up: check-config checks such an upstream then. */}}
{{- if not (contains "${" $upstream) }}
{{- $url := urlParse $upstream }}
{{- if not (and (has (lower $url.scheme) (list "http" "https")) $url.hostname) }}
{{- fail (printf "%s: must be an absolute http:// or https:// URL, got %q" .key $upstream) }}
{{- end }}
{{- if $url.userinfo }}
{{- fail (printf "%s: must not embed credentials; use headers with ${VAR} instead" .key) }}
{{- end }}
{{- if or $url.query $url.fragment }}
{{- fail (printf "%s: must not have a query or fragment (the app's query is appended)" .key) }}
{{- end }}
{{- $port := trimPrefix ":" (regexFind ":[0-9]+$" $url.host) }}
{{- if and $port (gt (atoi $port) 65535) }}
{{- fail (printf "%s: port %s is out of range (0-65535)" .key $port) }}
{{- end }}
{{- $endpoint := printf "%s:%s" (lower $url.hostname) ($port | default (ternary "443" "80" (eq (lower $url.scheme) "https"))) }}
{{- if hasKey $endpoints $endpoint }}
{{- fail (printf "%s: duplicate endpoint (also upstreams[%v]): each must have its own host:port" .key (get $endpoints $endpoint)) }}
{{- end }}
{{- $_ := set $endpoints $endpoint (.index | default 0) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* A probe on the admin port: (dict "path" "/readyz" "probe" .Values.probes.readiness). */}}
{{- define "gateway-proxy.probe" -}}
httpGet:
  path: {{ .path }}
  port: proxy-admin
{{ toYaml .probe }}
{{- end }}

{{/*
The proxy container. Both modes use it: the standalone Deployment, and (as
"gateway-proxy.sidecarContainer") your own pod spec in sidecar mode.
*/}}
{{- define "gateway-proxy.container" -}}
{{- include "gateway-proxy.validate" . -}}
- name: gateway-proxy
  image: {{ include "gateway-proxy.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if and (eq .Values.mode "sidecar") .Values.sidecar.native }}
  # A native sidecar: starts before the app's containers, stops after them.
  restartPolicy: Always
  {{- end }}
  # The config file is named on the command line only (no GATEWAY_PROXY_CONFIG env), so
  # `kubectl describe` shows what the proxy reads.
  args:
    - serve
    - --config
    - {{ include "gateway-proxy.configDir" . }}/gateway-proxy.yaml
  {{- if or .Values.credentials.env .Values.extraEnv }}
  env:
    {{- range $name, $key := .Values.credentials.env }}
    - name: {{ $name }}
      valueFrom:
        secretKeyRef:
          name: {{ $.Values.credentials.existingSecret }}
          key: {{ $key }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- if and .Values.credentials.envFrom .Values.credentials.existingSecret }}
  envFrom:
    - secretRef:
        name: {{ .Values.credentials.existingSecret }}
  {{- end }}
  ports:
    {{- if ne .Values.mode "sidecar" }}
    - name: proxy-http
      containerPort: {{ .Values.ports.http }}
      protocol: TCP
    {{- end }}
    - name: proxy-admin
      containerPort: {{ .Values.ports.admin }}
      protocol: TCP
    {{- with .Values.ports.inbound }}
    # The relays' callbacks (inbound_listen): reachable from outside the pod in both modes.
    - name: proxy-inbound
      containerPort: {{ . }}
      protocol: TCP
    {{- end }}
  startupProbe:
    {{- include "gateway-proxy.probe" (dict "path" "/healthz" "probe" .Values.probes.startup) | nindent 4 }}
  readinessProbe:
    {{- include "gateway-proxy.probe" (dict "path" "/readyz" "probe" .Values.probes.readiness) | nindent 4 }}
  livenessProbe:
    {{- include "gateway-proxy.probe" (dict "path" "/healthz" "probe" .Values.probes.liveness) | nindent 4 }}
  lifecycle:
    {{- if and (eq .Values.mode "sidecar") (not .Values.sidecar.native) }}
    # Fallback for Kubernetes < 1.29: the kubelet starts `containers` one by one in list
    # order without waiting for readiness, but it does wait for a postStart hook. Listed
    # first, the proxy holds the app's container back until its /readyz answers (for at
    # most the startup probe's budget).
    postStart:
      exec:
        command:
          - python
          - -c
          - {{ include "gateway-proxy.waitUntilReady" . | quote }}
    {{- end }}
    preStop:
      exec:
        command: ["sleep", "{{ .Values.lifecycle.preStopSleepSeconds }}"]
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    runAsNonRoot: true
    {{- with .Values.securityContext.runAsUser }}
    runAsUser: {{ . }}
    {{- end }}
    {{- with .Values.securityContext.runAsGroup }}
    runAsGroup: {{ . }}
    {{- end }}
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: ["ALL"]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    # gateway-proxy.yaml, and codes.yaml when catalog.configMap is set.
    - name: gateway-proxy-config
      mountPath: {{ include "gateway-proxy.configDir" . }}
      readOnly: true
    - name: gateway-proxy-tmp
      mountPath: /tmp
    {{- if include "gateway-proxy.ledgerFile" . }}
    # The message ledger's SQLite file (and its -wal, -shm): writable, unlike the root.
    - name: gateway-proxy-ledger
      mountPath: {{ include "gateway-proxy.ledgerDir" . }}
    {{- end }}
    {{- range include "gateway-proxy.tlsSecrets" . | fromYamlArray }}
    - name: gateway-proxy-tls-{{ .name }}
      mountPath: /tls/{{ .name }}
      readOnly: true
    {{- end }}
{{- end }}

{{/* The volumes the proxy container mounts; names are prefixed to stay clear of the app's. */}}
{{- define "gateway-proxy.volumes" -}}
# One projected volume, so the catalog sits next to the config without a nested mount.
- name: gateway-proxy-config
  projected:
    sources:
      - configMap:
          name: {{ include "gateway-proxy.fullname" . }}
      {{- if .Values.catalog.configMap }}
      - configMap:
          name: {{ .Values.catalog.configMap }}
          items:
            - key: {{ .Values.catalog.key }}
              path: codes.yaml
      {{- end }}
- name: gateway-proxy-tmp
  emptyDir:
    {{- with .Values.tmpVolume.medium }}
    medium: {{ . }}
    {{- end }}
    sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
{{- if include "gateway-proxy.ledgerFile" . }}
- name: gateway-proxy-ledger
  {{- with .Values.ledgerStorage.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ . }}
  {{- else }}
  # Lost with the pod: every kept answer and correlation (docs/deployment.md).
  emptyDir:
    {{- with .Values.ledgerStorage.medium }}
    medium: {{ . }}
    {{- end }}
    sizeLimit: {{ .Values.ledgerStorage.sizeLimit }}
  {{- end }}
{{- end }}
{{- range include "gateway-proxy.tlsSecrets" . | fromYamlArray }}
- name: gateway-proxy-tls-{{ .name }}
  secret:
    secretName: {{ .secretName }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/*
Sidecar mode, for your own pod spec (see helm/examples/app-with-sidecar):
  initContainers:    # sidecar.native: true (Kubernetes >= 1.29)
    {{- include "gateway-proxy.sidecarContainer" $gp | nindent 4 }}
  volumes:
    {{- include "gateway-proxy.sidecarVolumes" $gp | nindent 4 }}
With sidecar.native false (clusters < 1.29) put the container FIRST under `containers:`.
*/}}
{{- define "gateway-proxy.sidecarContainer" -}}
{{- include "gateway-proxy.container" . }}
{{- end }}

{{- define "gateway-proxy.sidecarVolumes" -}}
{{- include "gateway-proxy.volumes" . }}
{{- end }}

{{/*
The postStart script of the < 1.29 fallback: poll the admin port's /readyz until it
answers 2xx; give up (the hook fails, the kubelet restarts the proxy) after the startup
probe's budget.
*/}}
{{- define "gateway-proxy.waitUntilReady" -}}
{{- $budget := mul .Values.probes.startup.periodSeconds .Values.probes.startup.failureThreshold -}}
import sys, time, urllib.request
deadline = time.monotonic() + {{ $budget }}
while True:
    try:
        urllib.request.urlopen("http://127.0.0.1:{{ .Values.ports.admin }}/readyz", timeout=2)
        sys.exit(0)
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("gateway-proxy: /readyz not ready after {{ $budget }}s")
        time.sleep(0.5)
{{- end }}

{{/*
Pod annotation that rolls the pods when the proxy config changes. The catalog ConfigMap is
yours, so the chart cannot see its content: catalog.revision stands in for it.
*/}}
{{- define "gateway-proxy.configChecksum" -}}
checksum/gateway-proxy-config: {{ print (include "gateway-proxy.config" .) "\ncatalog.revision=" .Values.catalog.revision | sha256sum }}
{{- end }}

{{/*
How long the proxy needs after the kubelet starts stopping it: the preStop sleep, then
its own budget (docs/reliability.md): delay_seconds still serving, drain_seconds for
in-flight requests, and one second to answer what outlived the drain and exit.
*/}}
{{- define "gateway-proxy.shutdownBudget" -}}
{{- $shutdown := .Values.config.shutdown }}
{{- addf (float64 .Values.lifecycle.preStopSleepSeconds) (float64 ($shutdown.delay_seconds | default 0)) (float64 $shutdown.drain_seconds) 1.0 }}
{{- end }}

{{/*
Smallest terminationGracePeriodSeconds for the proxy alone: the first whole second after
the shutdown budget (the grace period must exceed it). A sidecar's pod adds the app's own
shutdown time.
*/}}
{{- define "gateway-proxy.minTerminationGracePeriodSeconds" -}}
{{- add1 (floor (include "gateway-proxy.shutdownBudget" . | float64) | int) }}
{{- end }}

{{/* The pods a PodMonitor selects: podMonitor.selector, else this release's standalone pods. */}}
{{- define "gateway-proxy.podMonitorSelector" -}}
{{- if .Values.podMonitor.selector }}
{{- toYaml .Values.podMonitor.selector }}
{{- else }}
{{- include "gateway-proxy.selectorLabels" . }}
{{- end }}
{{- end }}

{{/*
The kubectl command that reads the proxy's logs, for the alerts' `logs` annotation
({{ $labels.namespace }} is the alert's, filled in by Prometheus). The proxy's container is
"gateway-proxy" in both modes: standalone, in this release's pods; sidecar, in your app's
pods, selected by podMonitor.selector (or a placeholder to replace when that is unset).
*/}}
{{- define "gateway-proxy.logsCommand" -}}
{{- $selector := "" }}
{{- if eq .Values.mode "sidecar" }}
{{- $pairs := list }}
{{- range $key, $value := .Values.podMonitor.selector }}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) }}
{{- end }}
{{- $selector = join "," $pairs | default "YOUR_APP_POD_LABELS" }}
{{- else }}
{{- $selector = printf "app.kubernetes.io/name=%s,app.kubernetes.io/instance=%s" (include "gateway-proxy.name" .) .Release.Name }}
{{- end }}
{{- printf "kubectl -n {{ $labels.namespace }} logs -l %s -c gateway-proxy --since=15m --max-log-requests=20" $selector }}
{{- end }}
