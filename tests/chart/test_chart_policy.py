"""Policy over every rendered object: pod security, resources, labels, service accounts, NetworkPolicies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.chart.render import MONITORING_ON, RELEASE, find_object, render_chart

pytestmark = pytest.mark.unit

VALUE_SETS: list[dict[str, Any]] = [
    {},
    MONITORING_ON,
    {"predictor": {"mode": "deployment", "inferenceLog": {"enabled": True}}},
    {"mlflow": {"externalUri": "http://mlflow.example.internal:5000"}},
    {"training": {"cronJob": {"enabled": True}, "drift": {"enabled": True}}},
]
STANDARD_LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
)
NON_SELECTOR_LABELS = ("helm.sh/chart", "app.kubernetes.io/version", "app.kubernetes.io/managed-by")


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every pod spec in an object, the InferenceService's predictor (a pod spec with extras) included."""
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind == "Pod":
        yield spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield spec["template"]["spec"]
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "InferenceService":
        yield spec["predictor"]


def all_pods() -> list[tuple[str, dict[str, Any]]]:
    pods = []
    for values in VALUE_SETS:
        for obj in render_chart(values):
            pods.extend((f"{obj['kind']}/{obj['metadata']['name']}", p) for p in pod_specs(obj))
    return pods


def test_every_workload_kind_is_covered_by_the_policy_walk() -> None:
    names = {name.split("/")[0] for name, _ in all_pods()}
    assert names == {"InferenceService", "Deployment", "Job", "CronJob", "Pod"}


@pytest.mark.parametrize(("name", "pod"), all_pods(), ids=[n for n, _ in all_pods()])
def test_pod_security(name: str, pod: dict[str, Any]) -> None:
    sc = pod["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] >= 10000, name
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
    assert pod["automountServiceAccountToken"] is False, name
    assert pod["serviceAccountName"] == RELEASE, name
    assert "hostNetwork" not in pod and "hostPID" not in pod, name
    for c in pod.get("initContainers", []) + pod["containers"]:
        csc = c["securityContext"]
        where = f"{name}:{c['name']}"
        assert csc["allowPrivilegeEscalation"] is False, where
        assert csc["readOnlyRootFilesystem"] is True, where
        assert csc["capabilities"] == {"drop": ["ALL"]}, where
        assert csc.get("privileged", False) is False, where
        assert csc.get("runAsUser", sc["runAsUser"]) >= 10000, where
        assert csc.get("runAsNonRoot", True) is True, where
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{where} {kind}"
        assert ":" in c["image"] and not c["image"].endswith(":latest"), where


@pytest.mark.parametrize(("name", "pod"), all_pods(), ids=[n for n, _ in all_pods()])
def test_writable_paths_are_volumes(name: str, pod: dict[str, Any]) -> None:
    """With a read-only root FS, /tmp must be a volume for every Python process (MLflow downloads there)."""
    volumes = {v["name"] for v in pod.get("volumes", [])}
    for c in pod["containers"]:
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        assert "/tmp" in mounts, f"{name}:{c['name']}"
        assert set(mounts.values()) <= volumes


def test_service_account_has_no_token() -> None:
    sa = find_object("ServiceAccount", RELEASE)
    assert sa["automountServiceAccountToken"] is False


@pytest.mark.parametrize("values", VALUE_SETS, ids=str)
def test_standard_labels_on_every_object(values: dict[str, Any]) -> None:
    for obj in render_chart(values):
        labels = obj["metadata"].get("labels", {})
        missing = [k for k in STANDARD_LABELS if k not in labels]
        assert not missing, f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == RELEASE


def selectors(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, str]]]:
    spec = obj.get("spec", {})
    kind = obj["kind"]
    if kind in ("Deployment", "PodDisruptionBudget", "PodMonitor"):
        yield "selector", spec["selector"]["matchLabels"]
    if kind == "Service":
        yield "selector", spec["selector"]
    if kind == "NetworkPolicy":
        yield "podSelector", spec["podSelector"]["matchLabels"]
    if kind in ("Deployment", "Job"):
        yield "pod labels", spec["template"]["metadata"]["labels"]
    if kind == "InferenceService":
        yield "pod labels", spec["predictor"]["labels"]


@pytest.mark.parametrize("values", VALUE_SETS, ids=str)
def test_selectors_use_selector_labels_only(values: dict[str, Any]) -> None:
    seen = 0
    for obj in render_chart(values):
        for where, labels in selectors(obj):
            seen += 1
            bad = [k for k in NON_SELECTOR_LABELS if k in labels]
            assert not bad, f"{obj['kind']}/{obj['metadata']['name']} {where} has {bad}"
            assert labels["app.kubernetes.io/instance"] == RELEASE
    assert seen >= 8


def test_network_policies_deny_by_default_and_allow_only_the_system_flows() -> None:
    policies = {o["metadata"]["name"]: o["spec"] for o in render_chart({}) if o["kind"] == "NetworkPolicy"}
    assert set(policies) == {
        "churnguard-default-deny",
        "churnguard-dns",
        "churnguard-predictor",
        "churnguard-training",
        "churnguard-mlflow",
        "churnguard-ui",
        "churnguard-test",
    }
    deny = policies["churnguard-default-deny"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny
    assert deny["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "churnguard",
        "app.kubernetes.io/instance": RELEASE,
    }

    def component(peer: dict[str, Any]) -> str | None:
        return peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")

    predictor = policies["churnguard-predictor"]
    sources = predictor["ingress"][0]["from"]
    assert component(sources[0]) == "ui"
    assert sources[1]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    assert predictor["ingress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert [component(p) for p in predictor["egress"][0]["to"]] == ["mlflow"]
    mlflow = policies["churnguard-mlflow"]
    assert [component(p) for p in mlflow["ingress"][0]["from"]] == ["predictor", "training"]
    assert [component(p) for p in policies["churnguard-training"]["egress"][0]["to"]] == ["mlflow"]
    assert [component(p) for p in policies["churnguard-ui"]["egress"][0]["to"]] == ["predictor"]
    assert [component(p) for p in policies["churnguard-test"]["egress"][0]["to"]] == ["ui"]


@pytest.mark.parametrize(
    ("uri", "ports"),
    [
        ("http://mlflow.example.internal:5000", [5000, 443]),
        ("https://mlflow.example.internal", [443]),
        ("http://mlflow.example.internal", [80, 443]),
    ],
)
def test_external_mlflow_is_reachable_from_predictor_and_training(uri: str, ports: list[int]) -> None:
    """Without this rule the default-deny policy leaves only DNS: the predictor never turns ready, training fails."""
    for pod in ("-predictor", "-training"):
        (rule,) = find_object("NetworkPolicy", pod, {"mlflow": {"externalUri": uri}})["spec"]["egress"]
        assert rule == {"ports": [{"port": p, "protocol": "TCP"} for p in ports]}  # no `to`: any address


def test_external_mlflow_egress_can_be_narrowed_and_extended() -> None:
    peer = {"ipBlock": {"cidr": "10.0.0.10/32"}}
    extra = {"to": [{"ipBlock": {"cidr": "10.0.0.20/32"}}], "ports": [{"port": 9000, "protocol": "TCP"}]}
    values = {
        "mlflow": {"externalUri": "https://mlflow.example.internal"},
        "networkPolicy": {"externalMlflow": {"to": [peer], "extraPorts": []}, "extraEgress": [extra]},
    }
    egress = find_object("NetworkPolicy", "-predictor", values)["spec"]["egress"]
    assert egress == [{"to": [peer], "ports": [{"port": 443, "protocol": "TCP"}]}, extra]


def test_network_policies_can_be_switched_off() -> None:
    assert not [o for o in render_chart({"networkPolicy": {"enabled": False}}) if o["kind"] == "NetworkPolicy"]
