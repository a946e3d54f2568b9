#!/usr/bin/env bash
# Install what the ChurnGuard chart expects on a fresh kind cluster (idempotent; re-run at will):
#   cert-manager (KServe's webhook certificates), KServe in Standard mode (no Knative, no Istio, no Ingress),
#   metrics-server (the HPA KServe creates for the predictor scales on CPU), and kube-prometheus-stack
#   (Prometheus Operator CRDs, Prometheus, Grafana) as release "kps" in namespace "monitoring".
# Needs curl, kubectl, helm (v3.8+), jq and yq (v4) on PATH, and a current kube context (the kind cluster).
set -euo pipefail

CERT_MANAGER_VERSION="${CERT_MANAGER_VERSION:-v1.18.2}"
KSERVE_VERSION="${KSERVE_VERSION:-v0.17.1}"
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-3.13.1}"
KPS_VERSION="${KPS_VERSION:-88.5.3}"
KPS_RELEASE="${KPS_RELEASE:-kps}"
MONITORING_NS="${MONITORING_NS:-monitoring}"
WAIT="${WAIT:-600s}"

log() { printf '\n==> %s\n' "$*" >&2; }

for tool in curl kubectl helm jq yq; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done
kubectl cluster-info >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "cert-manager ${CERT_MANAGER_VERSION}"
helm repo add jetstack https://charts.jetstack.io --force-update >/dev/null
helm upgrade --install cert-manager jetstack/cert-manager \
  --namespace cert-manager --create-namespace \
  --version "${CERT_MANAGER_VERSION}" \
  --set crds.enabled=true \
  --wait --timeout "${WAIT}"

log "KServe ${KSERVE_VERSION} (Standard deployment mode)"
# The release's kserve.yaml has no Namespace (KServe's hack/release/generate-install.sh filters it out) and
# bundles its CRDs with objects of those kinds (the default ClusterStorageContainer): the namespace first, then
# the CRDs until they are Established, then everything else.
curl -fsSL --retry 3 -o "${work}/kserve.yaml" \
  "https://github.com/kserve/kserve/releases/download/${KSERVE_VERSION}/kserve.yaml"
kubectl create namespace kserve --dry-run=client -o yaml | kubectl apply -f -
yq 'select(.kind == "CustomResourceDefinition")' "${work}/kserve.yaml" > "${work}/crds.yaml"
yq 'select(.kind != "CustomResourceDefinition" and .kind != null)' "${work}/kserve.yaml" > "${work}/rest.yaml"
# Server-side apply: the CRDs are too large for the last-applied annotation; re-applying is a no-op.
kubectl apply --server-side --force-conflicts -f "${work}/crds.yaml"
mapfile -t crds < <(yq -N '.metadata.name' "${work}/crds.yaml")
kubectl wait --for=condition=Established --timeout="${WAIT}" "${crds[@]/#/crd/}"
kubectl apply --server-side --force-conflicts -f "${work}/rest.yaml"
# Every InferenceService defaults to Standard mode; no Ingress and no Istio VirtualService (none on kind).
config="$(kubectl -n kserve get configmap inferenceservice-config -o json)"
patched="$(jq '.data.deploy = ((.data.deploy // "{}") | fromjson | .defaultDeploymentMode = "Standard" | tojson)
  | .data.ingress = ((.data.ingress // "{}") | fromjson
      | .disableIngressCreation = true | .disableIstioVirtualHost = true | tojson)' <<<"${config}")"
if [ "$(jq -S .data <<<"${config}")" != "$(jq -S .data <<<"${patched}")" ]; then
  kubectl apply --server-side --force-conflicts -f - <<<"$(jq 'del(.metadata.managedFields, .metadata.resourceVersion)' <<<"${patched}")"
  kubectl -n kserve rollout restart deployment/kserve-controller-manager
fi
kubectl -n kserve rollout status deployment/kserve-controller-manager --timeout="${WAIT}"
# The webhook must answer before an InferenceService can be created.
kubectl -n kserve wait --for=jsonpath='{.subsets[0].addresses[0].ip}' endpoints/kserve-webhook-server-service \
  --timeout="${WAIT}"

log "metrics-server ${METRICS_SERVER_VERSION} (kind's kubelets have self-signed serving certificates)"
helm repo add metrics-server https://kubernetes-sigs.github.io/metrics-server/ --force-update >/dev/null
helm upgrade --install metrics-server metrics-server/metrics-server \
  --namespace kube-system \
  --version "${METRICS_SERVER_VERSION}" \
  --set 'args={--kubelet-insecure-tls}' \
  --wait --timeout "${WAIT}"

log "kube-prometheus-stack ${KPS_VERSION} as release ${KPS_RELEASE}"
kubectl create namespace "${MONITORING_NS}" --dry-run=client -o yaml | kubectl apply -f -
# Grafana's admin password: generated once, kept in a Secret (the chart has no default password since 79.0).
if ! kubectl -n "${MONITORING_NS}" get secret "${KPS_RELEASE}-grafana-admin" >/dev/null 2>&1; then
  kubectl -n "${MONITORING_NS}" create secret generic "${KPS_RELEASE}-grafana-admin" \
    --from-literal=admin-user=admin --from-literal=admin-password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
fi
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
# Small footprint for kind; Grafana on NodePort 30300 (k8s/kind-config.yaml maps it to 127.0.0.1:30300).
helm upgrade --install "${KPS_RELEASE}" prometheus-community/kube-prometheus-stack \
  --namespace "${MONITORING_NS}" \
  --version "${KPS_VERSION}" \
  --set alertmanager.enabled=false \
  --set nodeExporter.enabled=false \
  --set kubeStateMetrics.enabled=true \
  --set grafana.admin.existingSecret="${KPS_RELEASE}-grafana-admin" \
  --set grafana.service.type=NodePort \
  --set grafana.service.nodePort=30300 \
  --set grafana.sidecar.dashboards.enabled=true \
  --set grafana.sidecar.dashboards.searchNamespace=ALL \
  --set prometheus.prometheusSpec.scrapeInterval=15s \
  --set prometheus.prometheusSpec.evaluationInterval=15s \
  --wait --timeout "${WAIT}"

log "ready: install ChurnGuard with monitoring.labels.release=${KPS_RELEASE} (see docs/kubernetes.md)"
