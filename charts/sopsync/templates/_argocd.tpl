{{/*
The Argo CD Config Management Plugin pieces (issue 13), rendered only with
argocd.cmp.enabled. The plugin runs in a sidecar of Argo CD's repo-server, a pod this
chart does not own: the chart renders the plugin's ConfigMap in Argo CD's namespace,
and the sidecar, its volumes and the health check as values for the argo-cd chart
(repoServer.extraContainers, repoServer.volumes, configs.cm), kept in that same
ConfigMap under argo-cd-values.yaml so they always match this release's values.
*/}}

{{/* The ConfigMap holding plugin.yaml (and the argo-cd values snippet). */}}
{{- define "sopsync.argocdCmp.configMapName" -}}
{{- printf "%s-argocd-cmp" (include "sopsync.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The plugin's configuration, read by argocd-cmp-server from
/home/argocd/cmp-server/config/plugin.yaml (Argo CD docs: operator-manual/config-management-plugins). */}}
{{- define "sopsync.argocdCmp.pluginYaml" -}}
apiVersion: argoproj.io/v1alpha1
kind: ConfigManagementPlugin
metadata:
  # An Application selects it with spec.source.plugin.name (no spec.version, so the
  # name is used as it is).
  name: {{ .Values.argocd.cmp.pluginName }}
spec:
  # Checks the mode parameter before generate; prints nothing.
  init:
    command: [sopsync, argocd, init]
  # Runs in the Application's source directory; manifests on stdout only, one line on
  # stderr and a non-zero exit on any failure.
  generate:
    command: [sopsync, argocd, generate]
  {{- with .Values.argocd.cmp.discover }}
  discover:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  # Shown in the Application's Parameters tab; Argo CD sends only the parameters an
  # Application sets, and the defaults below are the ones the plugin applies itself.
  parameters:
    static:
      - name: mode
        title: How secrets reach Argo CD
        tooltip: "safe (default): SOPS Secret manifests become SopsSecret objects (ciphertext only) for the sopsync controller; secrets: rendered Secrets (plaintext in Argo CD); helm: the chart rendered with decrypted values files"
        string: safe
      - name: valueFiles
        title: Helm values files
        tooltip: Values files of the chart in the app directory, SOPS-encrypted or plain (SOPS ones only in mode helm)
        collectionType: array
        array: []
{{- end }}

{{/* The sidecar container, for the argo-cd chart's repoServer.extraContainers. */}}
{{- define "sopsync.argocdCmp.sidecar" -}}
{{- $cmp := .Values.argocd.cmp -}}
name: sopsync-cmp
image: "{{ $cmp.image.repository | default .Values.image.repository }}:{{ $cmp.image.tag | default .Values.image.tag | default .Chart.AppVersion }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
# argocd-cmp-server, copied into the shared volume by the repo-server's init container,
# serves the plugin to the repo-server over a socket in /home/argocd/cmp-server/plugins.
command: [/var/run/argocd/argocd-cmp-server]
env:
  {{- if $cmp.ageKey.existingSecret }}
  - name: SOPS_AGE_KEY_FILE
    value: /etc/sopsync/age/{{ $cmp.ageKey.key }}
  {{- end }}
  # helm (mode helm) writes its cache and config under these; the root is read-only.
  - name: HELM_CACHE_HOME
    value: /tmp/helm/cache
  - name: HELM_CONFIG_HOME
    value: /tmp/helm/config
  - name: HELM_DATA_HOME
    value: /tmp/helm/data
# Argo CD requires uid 999 for CMP sidecars; the controller keeps its own uid (65532).
securityContext:
  runAsNonRoot: true
  runAsUser: 999
  runAsGroup: 999
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
{{- with $cmp.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumeMounts:
  - name: var-files
    mountPath: /var/run/argocd
  - name: plugins
    mountPath: /home/argocd/cmp-server/plugins
  - name: sopsync-cmp-config
    mountPath: /home/argocd/cmp-server/config/plugin.yaml
    subPath: plugin.yaml
  # Not the repo-server's /tmp: Argo CD asks each sidecar for its own, so a path
  # traversal in one cannot reach the other's files.
  - name: sopsync-cmp-tmp
    mountPath: /tmp
  {{- if $cmp.ageKey.existingSecret }}
  - name: sopsync-cmp-age-key
    mountPath: /etc/sopsync/age
    readOnly: true
  {{- end }}
{{- end }}

{{/* The sidecar's volumes, for repoServer.volumes (var-files and plugins are the
repo-server's own). */}}
{{- define "sopsync.argocdCmp.volumes" -}}
{{- $cmp := .Values.argocd.cmp -}}
- name: sopsync-cmp-config
  configMap:
    name: {{ include "sopsync.argocdCmp.configMapName" . }}
- name: sopsync-cmp-tmp
  emptyDir:
    sizeLimit: {{ $cmp.tmpSizeLimit }}
{{- if $cmp.ageKey.existingSecret }}
# Mode 0444: the secret volume's files belong to root and the sidecar runs as 999
# without a supplemental group in the repo-server pod; only this container mounts it.
- name: sopsync-cmp-age-key
  secret:
    secretName: {{ $cmp.ageKey.existingSecret }}
    defaultMode: 0444
    items:
      - key: {{ $cmp.ageKey.key }}
        path: {{ $cmp.ageKey.key }}
{{- end }}
{{- end }}

{{/* Values for the argo-cd chart: the sidecar, its volumes, and the health check. */}}
{{- define "sopsync.argocdCmp.argoCdValues" -}}
# Values for the argo-cd Helm chart (merge into yours): the sopsync CMP sidecar of the
# repo-server and the health check of SopsSecret. Rendered by the sopsync chart with
# argocd.cmp.enabled=true.
repoServer:
  extraContainers:
    - {{ include "sopsync.argocdCmp.sidecar" . | indent 6 | trim }}
  volumes:
    {{- include "sopsync.argocdCmp.volumes" . | nindent 4 }}
configs:
  cm:
    resource.customizations.health.sopsync.io_SopsSecret: |
      {{- .Files.Get "files/sopssecret-health.lua" | trimSuffix "\n" | nindent 6 }}
{{- end }}
