"""The Model view's live quality card: test, estimated and realized metrics as the quality route reports them
after traffic and feedback through the UI's proxy; the trust states, the challenger line, the empty and the
404 states; and the card fits a phone."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.integration.ui_support import Page
from training.data import generate

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.ui_support"]
pytest.importorskip("playwright.sync_api")

FEATURES = ["age", "tenure_months", "monthly_charges", "contract_type", "num_tickets"]
METRICS = ("f1", "roc_auc", "precision", "recall", "brier")


def _labelled_traffic(ui_url: str, name: str, rows: int, seed: int) -> None:
    """Predictions and their generator labels through nginx, as a client would send them."""
    frame = generate(rows, seed)
    r = requests.post(
        f"{ui_url}/v1/models/{name}:predict", json={"instances": frame[FEATURES].to_dict("records")}, timeout=30
    )
    assert r.status_code == 200, r.text
    ids = [p["prediction_id"] for p in r.json()["predictions"]]
    outcomes = [{"prediction_id": i, "label": y} for i, y in zip(ids, frame["churn"].tolist(), strict=True)]
    fb = requests.post(f"{ui_url}/v1/models/{name}/feedback", json={"outcomes": outcomes}, timeout=30)
    assert fb.status_code == 200, fb.text


def _served(body: dict[str, Any]) -> dict[str, Any]:
    served: dict[str, Any] = next(v for v in body["versions"] if v["serving"])
    return served


def _open(ui: Page) -> Any:
    page = ui.open("model")
    page.wait_for_selector("#live-quality [data-metric]")
    return page


def _cell(page: Any, metric: str, source: str) -> str:
    text: str = page.inner_text(f"#live-quality tr[data-metric='{metric}'] td[data-source='{source}'] span")
    return text


def test_the_card_shows_what_the_quality_route_reports(
    any_ui: Page, ui_url: str, champion_info: dict[str, Any]
) -> None:
    name = champion_info["model_name"]
    _labelled_traffic(ui_url, name, 300, 404)
    page = _open(any_ui)
    body = requests.get(f"{ui_url}/v1/models/{name}/quality", timeout=10).json()
    served = _served(body)
    assert served["realized"]["rows"] >= 300 and served["estimated"]["rows"] >= 300
    for metric in METRICS:
        for source, value in (
            ("test", body["test"].get(metric)),
            ("estimated", served["estimated"][metric]),
            ("realized", served["realized"][metric]),
        ):
            assert _cell(page, metric, source) == f"{value:.3f}", (metric, source)
    rows = page.text_content("#live-quality [data-rows='realized']")  # shown in capitals by the CSS
    assert rows == f"{round(served['realized']['rows']):,} outcomes"
    holds = served["calibration"]["holds"]
    want = {True: "holds", False: "broken", None: "unknown"}[holds]
    assert page.get_attribute("#live-quality .q-trust", "data-trust") == want
    assert page.get_attribute("#live-quality [data-challenger]", "data-challenger") == "none"
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page scrolls sideways"
    box = page.locator("#live-quality").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    any_ui.shot(f"model-live-quality-{width}", full_page=False)


def _fake(ui: Page, body: dict[str, Any] | None, status: int = 200) -> None:
    ui.page.route(
        "**/quality",
        lambda route: route.fulfill(
            status=status, content_type="application/json", body=json.dumps(body or {"error": "Not Found"})
        ),
    )


def _report(*, holds: bool | None, estimated_rows: float, challenger: dict[str, Any] | None) -> dict[str, Any]:
    summary = {"rows": 0.0, **dict.fromkeys(METRICS), "accuracy": None, "positive_rate": None, "confusion": {}}
    estimated = {**summary, "rows": estimated_rows, "f1": 0.8 if estimated_rows else None}
    return {
        "model_name": "churnguard",
        "model_version": "3",
        "test": {"f1": 0.81, "roc_auc": 0.93, "ece": 0.04},
        "challenger": challenger,
        "versions": [
            {
                "model_version": "3",
                "serving": True,
                "realized": {**summary, "rows": 250.0, "f1": 0.61},
                "estimated": estimated,
                "calibration": {
                    "labelled_rows": 250.0 if holds is not None else 120.0,
                    "min_rows": 200,
                    "live_ece": None if holds is None else (0.05 if holds else 0.2),
                    "test_ece": 0.04,
                    "tolerance": 0.05,
                    "holds": holds,
                },
            }
        ],
    }


def test_the_trust_states_the_challenger_and_the_empty_state(ui: Page) -> None:
    shadow = {"model_version": "4", "against": [{"champion_version": "3", "rows": 400, "agreement": 0.9}]}
    _fake(ui, _report(holds=False, estimated_rows=1000, challenger=shadow))
    page = _open(ui)
    trust = page.locator("#live-quality .q-trust")
    assert trust.get_attribute("data-trust") == "broken"
    assert "Estimate broken" in trust.inner_text() and "0.200" in trust.inner_text()
    assert _cell(page, "f1", "realized") == "0.610" and _cell(page, "roc_auc", "realized") == "—"
    line = page.locator("#live-quality [data-challenger]")
    assert line.get_attribute("data-challenger") == "4"
    assert "Challenger v4 in shadow: 400 rows" in line.inner_text() and "90.0%" in line.inner_text()
    assert page.locator("#live-quality [data-quality-empty]").count() == 0

    ui.page.unroute("**/quality")
    _fake(ui, _report(holds=None, estimated_rows=0, challenger=None))
    page.reload()
    page = _open(ui)
    assert page.get_attribute("#live-quality .q-trust", "data-trust") == "unknown"
    assert "120 of 200 labelled rows" in page.inner_text("#live-quality .q-trust")
    assert page.locator("#live-quality [data-quality-empty]").is_visible()
    assert _cell(page, "f1", "estimated") == "—"


def test_a_predictor_without_the_quality_route_says_so(ui: Page) -> None:
    _fake(ui, None, status=404)
    page = ui.open("model")
    page.wait_for_selector("#live-quality [data-quality-error]")
    assert "no quality route" in page.inner_text("#live-quality")
    assert page.locator("#live-quality [data-metric]").count() == 0
