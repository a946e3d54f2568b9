"""The training pipeline for real: CLI subprocesses, a real MLflow server and embedded sqlite stores."""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from contract.spec import DatasetSpec
from tests.conftest import DATA_PATH, SPEC_PATH
from tests.support import free_port, train
from training.data import generate

REPORT_KEYS = {"model_name", "model_version", "threshold", "metrics", "baseline", "gate"}
METRIC_KEYS = {"roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "brier", "log_loss", "ece"}


def client_for(uri: str) -> MlflowClient:
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def champion_version(uri: str) -> str:
    return str(client_for(uri).get_model_version_by_alias("churnguard", "champion").version)


def test_run_registers_a_gated_champion_on_the_server(champion: dict[str, Any]) -> None:
    report = champion["report"]
    assert set(report) >= REPORT_KEYS and set(report["metrics"]) >= METRIC_KEYS
    assert {"roc_auc", "f1"} <= set(report["baseline"])
    assert report["gate"]["passed"] is True
    assert champion_version(champion["tracking_uri"]) == report["model_version"]
    ci = report["confidence_intervals"]
    assert ci["f1"][0] < report["metrics"]["f1"] < ci["f1"][1]


def test_minimum_quality_on_committed_data(champion: dict[str, Any]) -> None:
    assert champion["report"]["metrics"]["roc_auc"] >= 0.92


def test_champion_loads_back_with_pyfunc_and_sklearn(champion: dict[str, Any], spec: DatasetSpec) -> None:
    client_for(champion["tracking_uri"])
    df = pd.read_csv(DATA_PATH)[spec.feature_names].head(50)
    sk = mlflow.sklearn.load_model("models:/churnguard@champion")
    py = mlflow.pyfunc.load_model("models:/churnguard@champion")
    proba = np.asarray(py.predict(df))
    assert proba.shape == (50, 2)
    np.testing.assert_array_equal(proba, sk.predict_proba(df))
    assert py.metadata.get_input_schema().input_names() == spec.feature_names


def test_version_carries_files_tags_and_plots(champion: dict[str, Any]) -> None:
    c = client_for(champion["tracking_uri"])
    mv = c.get_model_version("churnguard", champion["version"])
    assert len(mv.tags["data_sha256"]) == 64 and mv.tags["gate_passed"] == "true"
    assert {"git_commit", "sklearn_version", "mlflow_version"} <= set(mv.tags)
    plots = {Path(a.path).name for a in c.list_artifacts(mv.run_id, "plots")}
    assert plots == {
        "roc_curve.png",
        "pr_curve.png",
        "calibration.png",
        "confusion_matrix.png",
        "feature_importance.png",
    }
    files = {Path(a.path).name for a in c.list_artifacts(mv.run_id, "churnguard")}
    assert files == {"spec.yaml", "reference.json", "reference.csv", "info.json", "eval_report.json", "scorer.json"}


def test_unreachable_server_fails_fast_with_a_clear_error(tmp_path: Path) -> None:
    start = time.monotonic()
    result = train(f"http://127.0.0.1:{free_port()}", tmp_path)
    assert result.returncode == 3
    assert time.monotonic() - start < 30
    assert "did not answer" in result.stderr and "MLFLOW_TRACKING_URI" in result.stderr


# -- an embedded store with a champion, shared by the tests that try to break it ----------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("embedded")
    result = train("", home)
    assert result.returncode == 0, result.stderr
    assert "models:/churnguard@champion" in result.stdout
    uri = f"sqlite:///{home / 'mlflow.db'}"
    return {"home": home, "uri": uri}


def versions(uri: str) -> list[str]:
    return sorted(str(v.version) for v in client_for(uri).search_model_versions("name = 'churnguard'"))


def bad_file(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    return path


GOOD_LINES = DATA_PATH.read_text().splitlines()
WIDE = {"COLUMNS": "200"}  # the failure table is not wrapped at 80 columns
HEADER = GOOD_LINES[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "file is empty"),
        (HEADER + "\n", "no data rows"),
        (
            "\n".join([HEADER.replace(",", ";"), *(line.replace(",", ";") for line in GOOD_LINES[1:50])]),
            "missing column",
        ),
        ("\n".join([HEADER, *GOOD_LINES[1:50], "30.7,12,50.5,0,1,1"]), "must be an integer"),
        ("\n".join([HEADER, *GOOD_LINES[1:50], "30,12,,0,1,1"]), "must not be empty"),
        ("\n".join([HEADER, *GOOD_LINES[1:50], "30,500,50.5,0,1,1"]), "must be <= 120"),
        ("\n".join([HEADER, *GOOD_LINES[1:50], "30,12,50.5,9,1,1"]), "must be one of [0, 1, 2]"),
        ("\n".join([HEADER, *(line[:-1] + "0" for line in GOOD_LINES[1:50])]), "needs at least two classes"),
        ("\n".join([HEADER + ",extra", *(line + ",1" for line in GOOD_LINES[1:50])]), "unknown column"),
        ("\n".join([HEADER.replace(",num_tickets", ""), *GOOD_LINES[1:50]]), "missing column"),
    ],
    ids=[
        "empty",
        "header-only",
        "semicolons",
        "float-in-int",
        "nan",
        "out-of-range",
        "unknown-category",
        "single-class",
        "extra-column",
        "missing-column",
    ],
)
def test_bad_input_is_refused_and_champion_unchanged(
    store: dict[str, Any], tmp_path: Path, content: str, expected: str
) -> None:
    before, all_before = champion_version(store["uri"]), versions(store["uri"])
    result = train("", store["home"], "run", "--data", str(bad_file(tmp_path, content)), "--spec", str(SPEC_PATH))
    assert result.returncode == 1
    assert expected in result.stderr
    assert champion_version(store["uri"]) == before and versions(store["uri"]) == all_before


def test_a_directory_as_data_is_a_usage_error_without_traceback(store: dict[str, Any], tmp_path: Path) -> None:
    before = champion_version(store["uri"])
    result = train("", store["home"], "run", "--data", str(tmp_path), "--spec", str(SPEC_PATH))
    assert result.returncode == 2
    assert "--data is a directory, not a CSV file" in result.stderr and "Traceback" not in result.stderr
    assert champion_version(store["uri"]) == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (random.Random(4).randbytes(4096), "not UTF-8 text"),
        (b"\0" * 4096, "binary file, not CSV text"),
        ("\n".join([HEADER, *GOOD_LINES[1:50], "30,12,34\x00.16,0,1,1"]).encode(), "34\\x00.16"),
        ("\n".join([HEADER.replace("age", " age ", 1), *GOOD_LINES[1:50]]).encode(), 'looks like "age"'),
        ("\n".join([HEADER, *GOOD_LINES[1:50], "４０,12,50.5,0,1,1"]).encode(), "written with ASCII digits"),
        ("\n".join([HEADER, *GOOD_LINES[1:50], "4_0,12,50.5,0,1,1"]).encode(), "without underscores"),
        ("\n".join([HEADER, *GOOD_LINES[1:50], f"{2**70},12,50.5,0,1,1"]).encode(), "must be <= 100"),
    ],
    ids=["random-bytes", "nul-bytes", "nul-in-a-cell", "spaced-header", "full-width", "underscore", "2**70"],
)
def test_altered_bytes_are_refused_readably(
    store: dict[str, Any], tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    result = train("", store["home"], "validate", "--data", str(path), "--spec", str(SPEC_PATH), env=WIDE)
    assert result.returncode == 1
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert "\0" not in result.stderr  # a NUL is shown escaped, not written to the terminal


def test_failed_gate_registers_but_leaves_champion(store: dict[str, Any]) -> None:
    before = champion_version(store["uri"])
    result = train("", store["home"], env={"CHURN_GATE_MIN_ROC_AUC": "0.999"})
    assert result.returncode == 1
    assert "FAIL: test ROC AUC" in result.stderr
    assert champion_version(store["uri"]) == before
    newest = max(versions(store["uri"]), key=int)
    assert client_for(store["uri"]).get_model_version("churnguard", newest).tags["gate_passed"] == "false"
    report = json.loads((store["home"] / "reports" / "eval_report.json").read_text())
    assert report["gate"]["passed"] is False and report["model_version"] == newest


def test_quarantine_sets_bad_rows_aside_and_trains_on_the_rest(store: dict[str, Any], tmp_path: Path) -> None:
    data = bad_file(tmp_path, "\n".join([*GOOD_LINES, "30.7,12,50.5,0,1,1", "30,12,50.5,9,1,0"]) + "\n")
    result = train("", store["home"], "run", "--data", str(data), "--on-invalid", "quarantine")
    assert result.returncode == 0, result.stderr
    quarantined = pd.read_csv(data.with_suffix(".quarantine.csv"))
    assert quarantined["_row"].tolist() == [2001, 2002]
    assert "must be an integer" in quarantined["_reasons"][0] and "must be one of" in quarantined["_reasons"][1]
    mv = client_for(store["uri"]).get_model_version_by_alias("churnguard", "champion")
    info = json.loads(
        Path(mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path="churnguard/info.json")).read_text()
    )
    assert info["rows"]["train"] + info["rows"]["test"] == 2000


def promoted_before(uri: str, version: str) -> list[str]:
    return [
        str(v.version)
        for v in client_for(uri).search_model_versions("name = 'churnguard'")
        if v.tags.get("churnguard.promoted") == "true" and int(v.version) < int(version)
    ]


def test_rollback_moves_champion_to_the_previous_one(store: dict[str, Any]) -> None:
    if not promoted_before(store["uri"], champion_version(store["uri"])):
        assert train("", store["home"]).returncode == 0  # a second champion to roll back from
    current = champion_version(store["uri"])
    result = train("", store["home"], "rollback")
    assert result.returncode == 0, result.stderr
    assert champion_version(store["uri"]) == max(promoted_before(store["uri"], current), key=int)
    assert f"from version {current}" in result.stdout


def test_rollback_without_an_earlier_champion_says_so(tmp_path: Path) -> None:
    assert train("", tmp_path).returncode == 0
    result = train("", tmp_path, "rollback")
    assert result.returncode == 1
    assert "no earlier champion" in result.stderr
    assert champion_version(f"sqlite:///{tmp_path / 'mlflow.db'}") == "1"


def test_stage_commands_hand_over_through_the_workdir(tmp_path: Path) -> None:
    work = tmp_path / "work"
    steps = [
        ("train", "--data", str(DATA_PATH), "--spec", str(SPEC_PATH), "--workdir", str(work)),
        ("evaluate", "--workdir", str(work), "--report-dir", str(tmp_path / "reports")),
        ("gate", "--workdir", str(work)),
        ("register", "--workdir", str(work), "--report-dir", str(tmp_path / "reports")),
    ]
    for step in steps:
        result = train("", tmp_path, *step)
        assert result.returncode == 0, f"{step[0]}: {result.stderr}"
    report = json.loads((tmp_path / "reports" / "eval_report.json").read_text())
    assert report["model_version"] == "1" and report["gate"]["passed"]
    assert champion_version(f"sqlite:///{tmp_path / 'mlflow.db'}") == "1"


def test_drift_command_flags_a_shift_and_passes_a_clean_sample(store: dict[str, Any], tmp_path: Path) -> None:
    clean, shifted = generate(600, seed=5), generate(600, seed=6)
    shifted["monthly_charges"] = (shifted["monthly_charges"] * 1.5).clip(upper=500).round(2)
    shifted["num_tickets"] = (shifted["num_tickets"] + 4).clip(upper=50)
    shifted["tenure_months"] = shifted["tenure_months"] // 2
    for name, df in (("clean", clean), ("shifted", shifted)):
        df.drop(columns="churn").to_csv(tmp_path / f"{name}.csv", index=False)
    ok = train("", store["home"], "drift", "--current", str(tmp_path / "clean.csv"), "--out-dir", str(tmp_path / "a"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = train(
        "", store["home"], "drift", "--current", str(tmp_path / "shifted.csv"), "--out-dir", str(tmp_path / "b")
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    share = re.search(r"drifted share (\d\.\d\d)", bad.stdout)
    assert share is not None and float(share.group(1)) >= 0.6  # the three shifted features of five
    assert (tmp_path / "b" / "drift_report.html").stat().st_size > 100_000
    assert json.loads((tmp_path / "b" / "drift_report.json").read_text())["metrics"]
