{{/* The predictor container; the same in the InferenceService and in deployment mode. */}}
{{- define "churnguard.predictorContainer" -}}
- name: kserve-container
  image: {{ include "churnguard.image" (list .Values.images.serve .) }}
  imagePullPolicy: {{ .Values.images.serve.pullPolicy }}
  {{- with .Values.predictor.args }}
  args:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: http1
      containerPort: 8080
      protocol: TCP
  env:
    - name: CHURN_HOST
      value: "0.0.0.0"
    - name: CHURN_MODEL_NAME
      value: {{ .Values.predictor.modelName | quote }}
    {{- include "churnguard.mlflowClientEnv" . | nindent 4 }}
    {{- if .Values.predictor.inferenceLog.enabled }}
    - name: CHURN_INFERENCE_LOG_DIR
      value: /var/log/churnguard
    {{- end }}
    {{- if .Values.predictor.modelRepositoryRoutes }}
    - name: CHURN_MODEL_REPOSITORY
      value: "true"
    {{- end }}
    - name: CHURN_FEEDBACK_KEY_FILE
      value: /etc/churnguard/feedback/key
    {{- with .Values.mlflow.uiUrl }}
    - name: CHURN_MLFLOW_UI_URL
      value: {{ . | quote }}
    {{- end }}
    {{- with .Values.monitoring.dashboard.url }}
    - name: CHURN_GRAFANA_URL
      value: {{ . | quote }}
    {{- end }}
    {{- include "churnguard.extraEnv" .Values.predictor | nindent 4 }}
  {{- include "churnguard.envFrom" .Values.predictor | nindent 2 }}
  # Liveness and readiness wait until the process answers (imports of MLflow, KServe and sklearn take seconds).
  startupProbe:
    httpGet:
      path: /v2/health/live
      port: http1
    periodSeconds: 2
    timeoutSeconds: 3
    failureThreshold: {{ .Values.predictor.probes.startupFailureThreshold }}
  readinessProbe:
    httpGet:
      path: /v2/health/ready
      port: http1
    periodSeconds: {{ .Values.predictor.probes.readinessPeriodSeconds }}
    timeoutSeconds: 3
    failureThreshold: 3
  livenessProbe:
    httpGet:
      path: /v2/health/live
      port: http1
    periodSeconds: 10
    timeoutSeconds: 3
    failureThreshold: {{ .Values.predictor.probes.livenessFailureThreshold }}
  {{- include "churnguard.containerSecurityContext" . | nindent 2 }}
  resources:
    {{- toYaml .Values.predictor.resources | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    - name: feedback-key
      mountPath: /etc/churnguard/feedback
      readOnly: true
    {{- if .Values.predictor.inferenceLog.enabled }}
    - name: inference-log
      mountPath: /var/log/churnguard
    {{- end }}
{{- end }}

{{/* Volumes of the predictor pod. */}}
{{- define "churnguard.predictorVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.predictor.tmpSizeLimit }}
- name: feedback-key
  secret:
    secretName: {{ include "churnguard.feedbackSecret" . }}
    defaultMode: 0440
    items:
      - key: {{ .Values.predictor.feedback.secretKey }}
        path: key
{{- if .Values.predictor.inferenceLog.enabled }}
- name: inference-log
  emptyDir:
    sizeLimit: {{ .Values.predictor.inferenceLog.sizeLimit }}
{{- end }}
{{- end }}
