"""The Model view as issue 15 asks: the gate's decision, the model against its baseline with the winner marked, the
ROC / PR / calibration / confusion matrix drawn from the info route, and links to the MLflow run and Grafana."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.ui_support import Page, percent

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.ui_support"]
pytest.importorskip("playwright.sync_api")

LOWER_IS_BETTER = {"brier", "log_loss", "ece"}


def open_model(ui: Page) -> Any:
    page = ui.open("model")
    page.wait_for_selector("#comparison .metric")
    return page


def test_the_gate_decision_and_every_reason_are_shown(any_ui: Page, champion_info: dict[str, Any]) -> None:
    page = open_model(any_ui)
    gate = champion_info["gate"]
    assert page.get_attribute("#gate", "data-passed") == str(gate["passed"]).lower()
    assert page.inner_text("#gate .gate-verdict").startswith("Passed" if gate["passed"] else "Failed")
    reasons = page.eval_on_selector_all("#gate .reason", "els => els.map(e => [e.dataset.level, e.innerText])")
    assert len(reasons) == len(gate["reasons"])
    for (level, text), reason in zip(reasons, gate["reasons"], strict=True):
        prefix, _, rest = reason.partition(": ")
        assert level == prefix and rest in text


def test_model_and_baseline_side_by_side_with_the_winner_marked(any_ui: Page, champion_info: dict[str, Any]) -> None:
    page = open_model(any_ui)
    metrics, baseline = champion_info["metrics"], champion_info["baseline"]
    for key, value in metrics.items():
        row = page.locator(f"#comparison .metric[data-metric='{key}']")
        assert row.locator(".metric-value").inner_text() == f"{value:.3f}"
        base = baseline[key]
        assert row.locator(".metric-base").inner_text() == f"{base:.3f}"
        better = value < base if key in LOWER_IS_BETTER else value > base
        want = "tie" if abs(value - base) < 5e-4 else "model" if better else "baseline"
        assert row.get_attribute("data-winner") == want, key
        if key in champion_info.get("confidence_intervals", {}):
            lo, hi = champion_info["confidence_intervals"][key]
            assert f"95% CI {lo:.3f}–{hi:.3f}" in row.inner_text()
    notice = page.locator("#baseline-notice")
    if champion_info["baseline_beats_candidate"]:
        assert notice.is_visible()
        sentence = champion_info["baseline_comparison"]
        assert sentence[1:] in notice.inner_text()  # first letter capitalised
        box = notice.bounding_box()
        assert box is not None and box["y"] < 600  # prominent: near the top, not under the fold
    else:
        assert notice.count() == 0
    any_ui.shot(f"model-comparison-{page.viewport_size['width']}", full_page=False)


def test_curves_and_the_confusion_matrix_are_drawn_from_the_info_route(
    any_ui: Page, champion_info: dict[str, Any]
) -> None:
    page = open_model(any_ui)
    curves = champion_info["curves"]
    for chart, key, n in (
        ("roc", "roc", len(curves["roc"]["fpr"])),
        ("roc", "baseline_roc", len(curves["baseline_roc"]["fpr"])),
        ("pr", "pr", len(curves["pr"]["recall"])),
        ("calibration", "calibration", len(curves["calibration"]["observed"])),
    ):
        d = page.get_attribute(f"[data-chart='{chart}'] svg path[data-series='{key}']", "d") or ""
        assert d.count("L") == n - 1, f"{key}: the path has one vertex per point"
    dots = page.locator("[data-chart='calibration'] svg circle")
    assert dots.count() == len(curves["calibration"]["observed"])
    cm = curves["confusion_matrix"]
    for cell in ("tn", "fp", "fn", "tp"):
        assert page.text_content(f"[data-chart='confusion_matrix'] [data-cell='{cell}'] + text") == str(cm[cell])
    label = page.get_attribute("[data-chart='roc'] svg", "aria-label") or ""
    assert f"AUC {champion_info['metrics']['roc_auc']:.3f}" in label
    assert page.locator("#model-body img").count() == 0  # drawn here, no pictures from MLflow
    # The feature table keeps its importance column on a phone (one block per feature).
    imp = page.locator("#model-body tr[data-feature] [data-importance]").first
    box = imp.bounding_box()
    assert box is not None and box["x"] + box["width"] <= page.viewport_size["width"]


def test_links_go_to_the_mlflow_run_and_grafana_only_when_set(ui: Page, champion_info: dict[str, Any]) -> None:
    page = open_model(ui)
    assert champion_info["mlflow_run_url"], "the test predictor is given CHURN_MLFLOW_UI_URL"
    assert page.get_attribute("[data-mlflow-run]", "href") == champion_info["mlflow_run_url"]
    assert "#/experiments/" in champion_info["mlflow_run_url"]
    assert page.get_attribute("[data-mlflow]", "href") == champion_info["mlflow_url"]
    grafana = page.locator("[data-grafana]")
    if champion_info.get("grafana_url"):
        assert grafana.get_attribute("href") == champion_info["grafana_url"]
    else:
        assert grafana.count() == 0
    body = page.inner_text("#model-body")
    assert f"v{champion_info['model_version']}" in body and percent(champion_info["threshold"]) in body
    for k, v in champion_info["best_params"].items():
        assert k in body and str(v) in body


def test_a_version_without_curves_or_gate_says_they_were_not_recorded(ui: Page, champion_info: dict[str, Any]) -> None:
    """An older version's model card (before curves, gate and the run link were recorded): the served card with
    those fields removed, as such a version's predictor answers."""
    older = {
        k: v
        for k, v in champion_info.items()
        if k not in {"curves", "gate", "mlflow_run_url", "grafana_url", "experiment_id"}
    }
    ui.page.route(
        "**/info",
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(older)),
    )
    page = open_model(ui)
    for chart in ("roc", "pr", "calibration", "confusion_matrix"):
        assert page.inner_text(f"[data-chart='{chart}']").endswith("Not recorded for this version.")
    assert "Not recorded for this version." in page.inner_text("#gate")
    assert page.locator("[data-mlflow-run]").count() == 0
    assert page.get_attribute("[data-mlflow]", "href") == champion_info["mlflow_url"]
