#!/usr/bin/env bash
# Install what the ChurnGuard chart expects on a fresh kind cluster (idempotent; re-run at will):
#   cert-manager (KServe's webhook certificates), KServe in Standard mode (no Knative, no Istio),
#   kube-prometheus-stack (Prometheus Operator CRDs, Prometheus, Grafana) as release "kps" in "monitoring".
# Needs kubectl, helm (v3.8+) and jq on PATH, and a current kube context (the kind cluster).
set -euo pipefail

CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.18.2}"
KSERVE_VERSION="${KSERVE_VERSION:-v0.17.0}"
KPS_VERSION="${KPS_VERSION:-77.1.1}"
KPS_RELEASE="${KPS_RELEASE:-kps}"
MONITORING_NS="${MONITORING_NS:-monitoring}"
WAIT="${WAIT:-600s}"

log() { printf '\n==> %s\n' "$*" >&2; }

for tool in kubectl helm jq; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done
kubectl cluster-info >/dev/null

log "cert-manager ${CERT_MANAGER_VERSION}"
helm repo add jetstack https://charts.jetstack.io --force-update >/dev/null
helm upgrade --install cert-manager jetstack/cert-manager \
  --namespace cert-manager --create-namespace \
  --version "${CERT_MANAGER_VERSION}" \
  --set crds.enabled=true \
  --wait --timeout "${WAIT}"

log "KServe ${KSERVE_VERSION} (Standard deployment mode)"
kserve_url="https://github.com/kserve/kserve/releases/download/${KSERVE_VERSION}"
# Server-side apply: the CRDs are too large for the last-applied annotation; re-applying is a no-op.
kubectl apply --server-side --force-conflicts -f "${kserve_url}/kserve.yaml"
kubectl -n kserve rollout status deployment/kserve-controller-manager --timeout="${WAIT}"
# Default every InferenceService to Standard mode and create no Ingress (no Istio/Gateway on kind);
# the chart also sets the deploymentMode annotation on its own InferenceService.
config="$(kubectl -n kserve get configmap inferenceservice-config -o json)"
patched="$(jq '.data.deploy = ((.data.deploy // "{}") | fromjson | .defaultDeploymentMode = "Standard" | tojson)
  | .data.ingress = ((.data.ingress // "{}") | fromjson | .disableIngressCreation = true | tojson)' <<<"${config}")"
if [ "$(jq -S .data <<<"${config}")" != "$(jq -S .data <<<"${patched}")" ]; then
  kubectl apply --server-side --force-conflicts -f - <<<"$(jq 'del(.metadata.managedFields, .metadata.resourceVersion)' <<<"${patched}")"
  kubectl -n kserve rollout restart deployment/kserve-controller-manager
fi
kubectl -n kserve rollout status deployment/kserve-controller-manager --timeout="${WAIT}"

log "kube-prometheus-stack ${KPS_VERSION} as release ${KPS_RELEASE}"
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
# Small footprint for kind; Grafana on NodePort 30300 (k8s/kind-config.yaml maps it to 127.0.0.1:3000).
helm upgrade --install "${KPS_RELEASE}" prometheus-community/kube-prometheus-stack \
  --namespace "${MONITORING_NS}" --create-namespace \
  --version "${KPS_VERSION}" \
  --set alertmanager.enabled=false \
  --set nodeExporter.enabled=false \
  --set kubeStateMetrics.enabled=true \
  --set grafana.service.type=NodePort \
  --set grafana.service.nodePort=30300 \
  --set grafana.sidecar.dashboards.enabled=true \
  --set grafana.sidecar.dashboards.searchNamespace=ALL \
  --set prometheus.prometheusSpec.scrapeInterval=15s \
  --wait --timeout "${WAIT}"

log "ready: install ChurnGuard with monitoring.labels.release=${KPS_RELEASE} (see docs/kubernetes.md)"
