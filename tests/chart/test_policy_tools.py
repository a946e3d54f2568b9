"""Static policy on what ships, offline: checkov on the rendered manifests of every values variant (zero failed
checks; a check that does not apply is skipped in the template with a `checkov.io/skip` annotation and a reason),
zizmor on the workflows (no finding of medium severity or higher), yamllint on values.yaml and the workflows.

checkov pins old versions of packages the images use (packaging, cachetools, importlib-metadata, tabulate), so it
runs in an environment of its own: `uv tool run` at the versions of .ci/checkov.lock (PyPI on the first run, the
uv cache afterwards)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.chart.render import MONITORING_ON, REPO, render_raw

pytestmark = pytest.mark.unit

BIN = Path(sys.executable).parent
CHECKOV = "checkov==3.3.30"
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "deployment-mode": {"predictor": {"mode": "deployment"}},
    "monitoring": MONITORING_ON,
    "external-mlflow": {"mlflow": {"externalUri": "http://mlflow.example.internal:5000"}},
    "schedules": {"training": {"cronJob": {"enabled": True}, "drift": {"enabled": True, "currentClaim": "logs"}}},
    "stores-and-ingress": {
        "mlflow": {
            "backendStore": {"existingSecret": "mlflow-db"},
            "artifactStore": {"destination": "s3://bucket/mlflow", "existingSecret": "mlflow-s3"},
        },
        "ingress": {"enabled": True, "host": "churn.example.internal", "mlflow": {"enabled": True, "host": "ml.x"}},
    },
    "pinned": {
        "images": {name: {"digest": "sha256:" + "a" * 64} for name in ("serve", "train", "ui")},
        "predictor": {"mode": "deployment"},
    },
}


def manifests(values: dict[str, Any]) -> str:
    rendered = render_raw(values)
    return "\n---\n".join(text for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt"))


@pytest.fixture(scope="module")
def checkov_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("rendered")
    for name, values in VARIANTS.items():
        (folder / f"{name}.yaml").write_text(manifests(values))
    env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}
    cmd = [str(BIN / "uv"), "tool", "run", "--constraints", str(REPO / ".ci" / "checkov.lock"), "--from", CHECKOV]
    results = {}
    for name in VARIANTS:
        out = subprocess.run(
            [*cmd, "checkov", "--framework", "kubernetes", "--skip-download", "-f", str(folder / f"{name}.yaml"),
             "--compact", "-o", "json"],
            capture_output=True, text=True, timeout=600, env=env, check=False,
        )  # fmt: skip
        assert out.returncode in (0, 1), f"checkov did not run ({out.returncode}): {out.stderr[-3000:]}"
        results[name] = json.loads(out.stdout)
    return results


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_checkov_finds_no_failed_check(checkov_results: dict[str, dict[str, Any]], variant: str) -> None:
    report = checkov_results[variant]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["results"]["failed_checks"]]
    assert report["summary"]["passed"] > 100, report["summary"]  # it did check the objects
    assert not failed, "\n".join(failed)


def test_checkov_skips_carry_a_reason_and_vanish_when_images_are_pinned(
    checkov_results: dict[str, dict[str, Any]],
) -> None:
    skipped = checkov_results["default"]["results"]["skipped_checks"]
    assert {c["check_id"] for c in skipped} == {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_15", "CKV_K8S_43"}
    assert all(len(c["check_result"].get("suppress_comment", "")) > 20 for c in skipped)
    pinned = {c["check_id"] for c in checkov_results["pinned"]["results"]["skipped_checks"]}
    assert pinned == {"CKV_K8S_8", "CKV_K8S_9"}  # only the helm test pod's probes


def test_zizmor_finds_nothing_of_medium_severity_or_more() -> None:
    out = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", "--format", "json", "--min-severity", "medium",
         "--no-exit-codes", ".github/workflows/"],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    findings = json.loads(out.stdout)
    assert findings == [], json.dumps(findings, indent=1)[:4000]


def test_yamllint_accepts_values_workflows_and_delivery_files() -> None:
    paths = ["charts/churnguard/values.yaml", ".github/workflows", "skaffold.yaml", "k8s", ".yamllint"]
    out = subprocess.run(
        [str(BIN / "yamllint"), "--strict", "-f", "parsable", *paths],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
