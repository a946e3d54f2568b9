"""Render the ChurnGuard Helm chart offline (Helm SDK via helm_python) and pick objects out of it.

API, for any test that wants the bytes the cluster gets:

- ``render_chart(values=None, *, name="churnguard", namespace="churnguard") -> list[dict]``: every rendered
  manifest, parsed (hooks such as the ``helm test`` pod included; NOTES.txt excluded). Cached per values.
- ``find_object(kind, name_contains, values=None) -> dict``: the one object of ``kind`` whose name contains
  ``name_contains`` (AssertionError when there is not exactly one).
- ``configmap_bytes(name_contains, key, values=None) -> bytes``: one ConfigMap entry (``data`` or
  ``binaryData``) as the bytes a pod sees.
- ``nginx_config() -> bytes``: ``ui/nginx.conf`` as shipped in the UI ConfigMap (envsubst runs in the pod).
- ``ui_files() -> dict[str, bytes]``: the UI's static files, by path relative to ``ui/`` (as mounted).
- ``dashboard_json() -> bytes``: the Grafana dashboard ConfigMap's JSON (``files/dashboards/churnguard.json``).
- ``prometheus_rule_spec() -> dict``: the PrometheusRule's spec (``files/rules/churnguard.rules.yaml``).
- ``MONITORING_ON``: values that switch on the PodMonitor, PrometheusRule and dashboard.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import helm_python
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "churnguard"
RELEASE = "churnguard"
NAMESPACE = "churnguard"

MONITORING_ON: dict[str, Any] = {
    "monitoring": {
        "labels": {"release": "kps"},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "dashboard": {"enabled": True},
    }
}

_cache: dict[str, list[dict[str, Any]]] = {}
helm_python.disable_logging()  # the loader logs every symlink it follows (files/ui -> ui/)


def load_chart() -> helm_python.Chart:
    return helm_python.Chart.load(str(CHART_DIR))


def render_raw(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> dict[str, str]:
    """Template path -> rendered text, exactly as Helm produced it."""
    return load_chart().render(values or {}, name=name, namespace=namespace, is_install=True)


def render_chart(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> list[dict[str, Any]]:
    """Every rendered manifest, parsed; a fresh deep copy per call so callers may mutate it."""
    key = json.dumps([values or {}, name, namespace], sort_keys=True)
    if key not in _cache:
        docs: list[dict[str, Any]] = []
        for path, text in sorted(render_raw(values, name=name, namespace=namespace).items()):
            if path.endswith("NOTES.txt"):
                continue
            docs.extend(d for d in yaml.safe_load_all(text) if d)
        _cache[key] = docs
    return copy.deepcopy(_cache[key])


def find_object(kind: str, name_contains: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    found = [o for o in render_chart(values) if o["kind"] == kind and name_contains in o["metadata"]["name"]]
    assert len(found) == 1, (
        f"expected one {kind} named *{name_contains}*, found {[o['metadata']['name'] for o in found]}"
    )
    return found[0]


def configmap_bytes(name_contains: str, key: str, values: dict[str, Any] | None = None) -> bytes:
    cm = find_object("ConfigMap", name_contains, values)
    if key in cm.get("data", {}):
        return str(cm["data"][key]).encode()
    return base64.b64decode(cm["binaryData"][key])


def nginx_config() -> bytes:
    return configmap_bytes("-ui-nginx", "nginx.conf.template")


def ui_files() -> dict[str, bytes]:
    """Static UI files by the path the volume gives them under /usr/share/nginx/html."""
    deployment = find_object("Deployment", "-ui")
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "html")
    return {item["path"]: configmap_bytes("-ui-files", item["key"]) for item in volume["configMap"]["items"]}


def dashboard_json() -> bytes:
    return configmap_bytes("-dashboard", "churnguard.json", MONITORING_ON)


def prometheus_rule_spec() -> dict[str, Any]:
    spec: dict[str, Any] = find_object("PrometheusRule", RELEASE, MONITORING_ON)["spec"]
    return spec
