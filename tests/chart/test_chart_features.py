"""What Helm users expect of a chart like this: Ingress, external MLflow stores from Secrets, per-component pod
settings, a startup probe, image digests, a namespace on every object."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from tests.chart.render import NAMESPACE, RELEASE, find_object, load_chart, render_chart

pytestmark = pytest.mark.unit

STORES: dict[str, Any] = {
    "mlflow": {
        "backendStore": {"existingSecret": "mlflow-db", "secretKey": "url"},
        "artifactStore": {"destination": "s3://bucket/mlflow", "existingSecret": "mlflow-s3"},
        "persistence": {"enabled": False},
    }
}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "InferenceService":
        return dict(obj["spec"]["predictor"])
    if obj["kind"] == "CronJob":
        return dict(obj["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(obj["spec"]["template"]["spec"])


def test_no_ingress_by_default() -> None:
    assert not [o for o in render_chart({}) if o["kind"] == "Ingress"]


def test_ingress_routes_the_ui_and_mlflow_only_behind_its_own_flag() -> None:
    values = {"ingress": {"enabled": True, "className": "nginx", "host": "churn.example.internal"}}
    ingress = find_object("Ingress", RELEASE, values)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "churn.example.internal"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "churnguard-ui", "port": {"name": "http"}}

    values["ingress"]["mlflow"] = {"enabled": True, "host": "mlflow.example.internal"}
    rules = find_object("Ingress", RELEASE, values)["spec"]["rules"]
    assert [r["host"] for r in rules] == ["mlflow.example.internal", "churn.example.internal"]
    assert rules[0]["http"]["paths"][0]["backend"]["service"]["name"] == "churnguard-mlflow"
    args = find_object("Deployment", "-mlflow", values)["spec"]["template"]["spec"]["containers"][0]["args"]
    allowed = next(a for a in args if a.startswith("--allowed-hosts="))
    assert "mlflow.example.internal" in allowed.split("=", 1)[1].split(",")  # MLflow's DNS-rebinding guard
    policy = find_object("NetworkPolicy", "-mlflow", values)["spec"]
    assert policy["ingress"][1] == {"ports": [{"port": 5000, "protocol": "TCP"}]}  # the ingress controller


def test_mlflow_ingress_needs_a_host() -> None:
    with pytest.raises(helm_python.HelmValuesError):
        load_chart().validate_schema({"ingress": {"enabled": True, "mlflow": {"enabled": True}}})


def test_mlflow_uses_an_external_database_and_s3_from_secrets() -> None:
    deployment = find_object("Deployment", "-mlflow", STORES)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in container["args"]
    assert "--artifacts-destination=s3://bucket/mlflow" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"] == {"secretKeyRef": {"name": "mlflow-db", "key": "url"}}
    assert container["envFrom"] == [{"secretRef": {"name": "mlflow-s3"}}]
    assert not [o for o in render_chart(STORES) if o["kind"] == "PersistentVolumeClaim"]
    policy = find_object("NetworkPolicy", "-mlflow", STORES)["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["egress"] == [{"ports": [{"port": 5432, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}]
    # The default: sqlite and artifacts on the claim, and MLflow may reach nothing but DNS.
    default = find_object("NetworkPolicy", "-mlflow")["spec"]
    assert default["policyTypes"] == ["Ingress"] and "egress" not in default


@pytest.mark.parametrize("mode", ["inferenceservice", "deployment"])
def test_every_component_takes_env_pod_metadata_and_scheduling(mode: str) -> None:
    settings = {
        "extraEnv": [{"name": "EXTRA", "value": "1"}],
        "envFrom": [{"configMapRef": {"name": "shared"}}],
        "podLabels": {"team": "churn"},
        "podAnnotations": {"example.com/owner": "churn"},
        "nodeSelector": {"pool": "ml"},
        "tolerations": [{"key": "ml", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}],
    }
    values = {"predictor": {"mode": mode, **settings}, **{c: settings for c in ("mlflow", "training", "ui")}}
    objects = render_chart(values)
    workloads = [o for o in objects if o["kind"] in ("Deployment", "Job", "InferenceService")]
    assert {o["metadata"]["labels"]["app.kubernetes.io/component"] for o in workloads} == {
        "predictor",
        "mlflow",
        "training",
        "ui",
    }
    for obj in workloads:
        spec = pod_spec(obj)
        for key in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints"):
            assert spec[key] == settings[key], (obj["metadata"]["name"], key)
        main = spec["containers"][0]
        assert {"name": "EXTRA", "value": "1"} in main["env"], obj["metadata"]["name"]
        assert main["envFrom"] == settings["envFrom"], obj["metadata"]["name"]
        meta = obj["spec"]["predictor"] if obj["kind"] == "InferenceService" else obj["spec"]["template"]["metadata"]
        assert meta["labels"]["team"] == "churn" and meta["annotations"]["example.com/owner"] == "churn"
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE  # selector labels untouched


def test_pod_labels_cannot_replace_the_selector_labels() -> None:
    with pytest.raises(helm_python.HelmValuesError):
        load_chart().validate_schema({"ui": {"podLabels": {"app.kubernetes.io/component": "other"}}})


def test_predictor_has_a_startup_probe_before_liveness() -> None:
    (container,) = find_object("InferenceService", RELEASE)["spec"]["predictor"]["containers"]
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/v2/health/live", "port": "http1"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    assert "initialDelaySeconds" not in container["livenessProbe"]


def test_an_image_digest_pins_the_reference() -> None:
    digest = "sha256:" + "b" * 64
    values = {"images": {"serve": {"digest": digest}, "train": {"tag": "v2", "digest": digest}}}
    (container,) = find_object("InferenceService", RELEASE, values)["spec"]["predictor"]["containers"]
    assert container["image"] == f"churnguard-serve:0.1.0@{digest}"
    mlflow = find_object("Deployment", "-mlflow", values)["spec"]["template"]["spec"]["containers"][0]
    assert mlflow["image"] == f"churnguard-train:v2@{digest}"  # MLflow runs the training image
    with pytest.raises(helm_python.HelmValuesError):
        load_chart().validate_schema({"images": {"serve": {"digest": "latest"}}})


def test_every_object_names_its_namespace() -> None:
    values = {"ingress": {"enabled": True}, "training": {"cronJob": {"enabled": True}}, **STORES}
    for obj in render_chart(values):
        assert obj["metadata"].get("namespace") == NAMESPACE, (obj["kind"], obj["metadata"]["name"])
