{{/* Chart name, overridable with nameOverride. */}}
{{- define "churnguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of every object: <release>-<chart>, or the release name when it already contains the chart
name. Kept at 40 characters so that suffixes ("-predictor", "-ui-nginx", KServe's own) stay within 63.
*/}}
{{- define "churnguard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, as used by the helm.sh/chart label. */}}
{{- define "churnguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels of every object. */}}
{{- define "churnguard.labels" -}}
helm.sh/chart: {{ include "churnguard.chart" . }}
{{ include "churnguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: churnguard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels (only on selectors and pod templates, with app.kubernetes.io/component added per part). */}}
{{- define "churnguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "churnguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Name of the ServiceAccount every pod runs as. */}}
{{- define "churnguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "churnguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the predictor's Service (KServe names it <isvc>-predictor; deployment mode uses the same name). */}}
{{- define "churnguard.predictorService" -}}
{{- printf "%s-predictor" (include "churnguard.fullname" .) }}
{{- end }}

{{/* Name of the in-cluster MLflow objects. */}}
{{/* The Secret holding the prediction ids' signing key: the user's, or the one this chart creates. */}}
{{- define "churnguard.feedbackSecret" -}}
{{- default (printf "%s-feedback" (include "churnguard.fullname" .)) .Values.predictor.feedback.existingSecret }}
{{- end }}

{{- define "churnguard.mlflowName" -}}
{{- printf "%s-mlflow" (include "churnguard.fullname" .) }}
{{- end }}

{{/* MLflow tracking URI the predictor and training use. */}}
{{- define "churnguard.mlflowUri" -}}
{{- if .Values.mlflow.externalUri }}
{{- .Values.mlflow.externalUri }}
{{- else }}
{{- printf "http://%s.%s.svc:5000" (include "churnguard.mlflowName" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* Predictor upstream of the UI's nginx (PREDICTOR_UPSTREAM). */}}
{{- define "churnguard.predictorUpstream" -}}
{{- printf "http://%s.%s.svc:80" (include "churnguard.predictorService" .) .Release.Namespace }}
{{- end }}

{{/* image reference from {repository, tag, digest}; an empty tag means the chart's appVersion. */}}
{{- define "churnguard.image" -}}
{{- $img := index . 0 }}{{- $root := index . 1 }}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag) }}{{ with $img.digest }}@{{ . }}{{ end }}
{{- end }}

{{/* Image of the MLflow server: mlflow.image, falling back to the training image. */}}
{{- define "churnguard.mlflowImage" -}}
{{- $repo := default .Values.images.train.repository .Values.mlflow.image.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.images.train.tag) .Values.mlflow.image.tag }}
{{- printf "%s:%s" $repo $tag }}{{ with include "churnguard.mlflowImageDigest" . }}@{{ . }}{{ end }}
{{- end }}

{{/* Digest of the MLflow server's image: mlflow.image.digest when that image is set, else the training image's. */}}
{{- define "churnguard.mlflowImageDigest" -}}
{{- ternary .Values.mlflow.image.digest .Values.images.train.digest (or (not (empty .Values.mlflow.image.repository)) (not (empty .Values.mlflow.image.digest))) }}
{{- end }}

{{/*
checkov annotations of a workload whose images are referenced by tag (call with the list of image values):
CKV_K8S_43 (image digest) and CKV_K8S_15 (pull policy Always) do not apply to images built from this
repository and loaded by tag (kind load, skaffold); set images.<name>.digest to pin them instead.
*/}}
{{- define "churnguard.checkovImageSkips" -}}
{{- $byTag := false }}
{{- range . }}{{ if not .digest }}{{ $byTag = true }}{{ end }}{{ end }}
{{- if $byTag }}
checkov.io/skip1: CKV_K8S_43=images built from this repository are loaded by tag; set images.*.digest to pin
checkov.io/skip2: CKV_K8S_15=IfNotPresent keeps kind-loaded images; a digest pins the image instead
{{- end }}
{{- end }}

{{/* Scheduling of a component's pods (call with its values): nodeSelector, tolerations, affinity, spread. */}}
{{- define "churnguard.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* A component's extra environment variables (call with its values): its extraEnv items; envFrom below. */}}
{{- define "churnguard.extraEnv" -}}
{{- with .extraEnv }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{- define "churnguard.envFrom" -}}
{{- with .envFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every pod: service account without token, security context, pull secrets. */}}
{{- define "churnguard.podCommon" -}}
serviceAccountName: {{ include "churnguard.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Container security context shared by every container. */}}
{{- define "churnguard.containerSecurityContext" -}}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
{{- end }}

{{/* Environment of processes that talk to MLflow. HOME and TMPDIR point at the writable /tmp emptyDir. */}}
{{- define "churnguard.mlflowClientEnv" -}}
- name: MLFLOW_TRACKING_URI
  value: {{ include "churnguard.mlflowUri" . | quote }}
- name: HOME
  value: /tmp
- name: TMPDIR
  value: /tmp
{{- end }}

{{/* Container of the training Job/CronJob that waits for MLflow, so the first run does not burn a retry. */}}
{{- define "churnguard.waitForMlflow" -}}
- name: wait-for-mlflow
  image: {{ include "churnguard.image" (list .Values.images.train .) }}
  imagePullPolicy: {{ .Values.images.train.pullPolicy }}
  command: ["python", "-c"]
  args:
    - |
      import os, sys, time, urllib.request
      url = os.environ["MLFLOW_TRACKING_URI"].rstrip("/") + "/health"
      for attempt in range(120):
          try:
              urllib.request.urlopen(url, timeout=3)
              sys.exit(0)
          except Exception as exc:
              print(f"waiting for {url}: {exc}", flush=True)
              time.sleep(5)
      sys.exit(1)
  env:
    {{- include "churnguard.mlflowClientEnv" . | nindent 4 }}
  {{- include "churnguard.containerSecurityContext" . | nindent 2 }}
  resources:
    requests:
      cpu: 10m
      memory: 32Mi
    limits:
      cpu: 100m
      memory: 64Mi
{{- end }}

{{/*
Name of the training Job: <fullname>-train-<hash of its pod spec and training.trigger>. A Job's pod template is
immutable and a finished Job is kept (ttlSecondsAfterFinished), so the name changes exactly when what it would run
changes: `helm upgrade` with the same values never retrains, a new image or setting does, and so does a new
training.trigger.
*/}}
{{- define "churnguard.trainingJobName" -}}
{{- $pod := include "churnguard.trainingPod" (list . .Values.training.args) }}
{{- printf "%s-train-%s" (include "churnguard.fullname" .) (print $pod "\n" .Values.training.trigger | sha256sum | trunc 10) }}
{{- end }}

{{/* Pod spec of a training run (Job and CronJob); call with (list $root $args). */}}
{{- define "churnguard.trainingPod" -}}
{{- $root := index . 0 }}{{- $args := index . 1 }}
{{- with $root }}
{{- include "churnguard.podCommon" . }}
restartPolicy: Never
{{- if not .Values.mlflow.externalUri }}
initContainers:
  {{- include "churnguard.waitForMlflow" . | nindent 2 }}
{{- end }}
containers:
  - name: training
    image: {{ include "churnguard.image" (list .Values.images.train .) }}
    imagePullPolicy: {{ .Values.images.train.pullPolicy }}
    args:
      {{- toYaml $args | nindent 6 }}
    env:
      {{- include "churnguard.mlflowClientEnv" . | nindent 6 }}
      - name: CHURN_HOME
        value: /tmp/churnguard
      {{- include "churnguard.extraEnv" .Values.training | nindent 6 }}
    {{- include "churnguard.envFrom" .Values.training | nindent 4 }}
    {{- include "churnguard.containerSecurityContext" . | nindent 4 }}
    resources:
      {{- toYaml .Values.training.resources | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 1Gi
{{- include "churnguard.scheduling" .Values.training }}
{{- end }}
{{- end }}

{{/* Pod template metadata of a component (call with (list $root $component $values)): selector labels, then
the component's podLabels and podAnnotations. */}}
{{- define "churnguard.podMetadata" -}}
{{- $root := index . 0 }}{{- $component := index . 1 }}{{- $values := index . 2 }}
labels:
  {{- with $values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- include "churnguard.selectorLabels" $root | nindent 2 }}
  app.kubernetes.io/component: {{ $component }}
{{- with $values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
