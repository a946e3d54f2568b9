"""Rendered objects against real schemas: core kinds with kubernetes-validate (strict), custom resources
against their CRDs' openAPIV3Schema (../shared/k8s-schemas) with unknown fields treated as errors."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart.render import MONITORING_ON, REPO, render_chart

pytestmark = pytest.mark.unit

SCHEMAS = REPO.parent / "shared" / "k8s-schemas"
KUBE_VERSIONS = ("1.32", "1.35")  # Chart.yaml kubeVersion (KServe 0.17 needs 1.32) and a recent release
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "monitoring": MONITORING_ON,
    "deployment-mode": {"predictor": {"mode": "deployment", "inferenceLog": {"enabled": True}}, **MONITORING_ON},
    "external-mlflow": {"mlflow": {"externalUri": "http://mlflow.example.internal:5000"}},
    "cronjobs": {"training": {"cronJob": {"enabled": True}, "drift": {"enabled": True, "currentClaim": "logs"}}},
    "nodeport-ui": {"ui": {"service": {"type": "NodePort", "nodePort": 30080}}},
}
CRD_FILES = {
    ("serving.kserve.io", "InferenceService"): "inferenceservices.yaml",
    ("monitoring.coreos.com", "PodMonitor"): "podmonitors.yaml",
    ("monitoring.coreos.com", "ServiceMonitor"): "servicemonitors.yaml",
    ("monitoring.coreos.com", "PrometheusRule"): "prometheusrules.yaml",
}


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """What an API server keeps, as JSON Schema: unknown fields are errors, int-or-string is either."""
    out = dict(schema)
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if "properties" in out:
        out["properties"] = {k: strict(v) for k, v in out["properties"].items()}
        if not out.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in out:
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strict(out["additionalProperties"])
    if isinstance(out.get("items"), dict):
        out["items"] = strict(out["items"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in out:
            out[key] = [strict(s) for s in out[key]]
    return out


@cache
def crd_validator(group: str, kind: str, version: str) -> jsonschema.Draft7Validator:
    crd = yaml.safe_load((SCHEMAS / CRD_FILES[(group, kind)]).read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return jsonschema.Draft7Validator(strict(served["schema"]["openAPIV3Schema"]))


def group_version(obj: dict[str, Any]) -> tuple[str, str]:
    group, _, version = obj["apiVersion"].rpartition("/")
    return group, version


@pytest.fixture(scope="module")
def schemas_dir() -> Path:
    if not SCHEMAS.is_dir():
        pytest.skip(f"CRD schemas not found at {SCHEMAS} (they live in the workspace's shared/ folder)")
    return SCHEMAS


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_core_objects_pass_kubernetes_validate_strict(values: dict[str, Any], kube_version: str) -> None:
    unchecked = set()
    for obj in render_chart(values):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unchecked.add(obj["kind"])  # a custom resource: checked against its CRD below
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} invalid for Kubernetes {kube_version}: {exc.message} at {list(exc.path)}")
    assert unchecked <= {kind for _, kind in CRD_FILES}, unchecked


def test_kubernetes_validate_catches_an_unknown_field() -> None:
    """Guard: strict mode really rejects a field the API server would drop."""
    deployment = next(o for o in render_chart({}) if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.33", strict=True)


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_custom_resources_match_their_crd_schemas(values: dict[str, Any], schemas_dir: Path) -> None:
    checked = 0
    for obj in render_chart(values):
        group, version = group_version(obj)
        if (group, obj["kind"]) not in CRD_FILES:
            continue
        errors = sorted(crd_validator(group, obj["kind"], version).iter_errors(obj), key=str)
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: " + "; ".join(
            f"{e.message} at {list(e.path)}" for e in errors[:5]
        )
        checked += 1
    assert checked >= 1  # every value set renders the InferenceService or monitoring objects


def test_crd_check_rejects_unknown_fields(schemas_dir: Path) -> None:
    """Guard: a misspelled InferenceService field fails, as the API server would silently drop it."""
    isvc = next(o for o in render_chart({}) if o["kind"] == "InferenceService")
    validator = crd_validator("serving.kserve.io", "InferenceService", "v1beta1")
    assert not list(validator.iter_errors(isvc))
    isvc["spec"]["predictor"]["minReplica"] = 1
    assert list(validator.iter_errors(isvc))
    isvc["spec"]["predictor"].pop("minReplica")
    isvc["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    assert list(validator.iter_errors(isvc))
