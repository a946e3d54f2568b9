"""The Monitoring view: live PSI per feature with its band, live vs reference distributions, refreshed while open."""

from __future__ import annotations

import csv
from typing import Any

import pytest
import requests

from tests.conftest import DATA_PATH
from tests.integration.ui_support import Page, api_predict

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.ui_support"]
pytest.importorskip("playwright.sync_api")


def monitoring(ui_url: str, name: str) -> dict[str, Any]:
    r = requests.get(f"{ui_url}/v1/models/{name}/monitoring", timeout=10)
    r.raise_for_status()
    data: dict[str, Any] = r.json()
    return data


def score_rows(ui_url: str, info: dict[str, Any], n: int, skip: int = 0) -> None:
    names = [f["name"] for f in info["spec"]["features"]]
    with DATA_PATH.open() as f:
        rows = list(csv.DictReader(f))[skip : skip + n]
    instances = [{k: float(r[k]) if "." in r[k] else int(r[k]) for k in names} for r in rows]
    api_predict(ui_url, info["model_name"], instances)


def band(psi: float) -> str:
    return "stable" if psi < 0.1 else "moderate" if psi < 0.25 else "significant"


@pytest.fixture
def filled(ui_url: str, champion_info: dict[str, Any]) -> dict[str, Any]:
    """The predictor's drift window holds at least min_rows rows."""
    name = champion_info["model_name"]
    state = monitoring(ui_url, name)
    if state["window_rows"] < state["min_rows"]:
        score_rows(ui_url, champion_info, state["min_rows"] + 10)
    return monitoring(ui_url, name)


def test_psi_per_feature_and_its_band_match_the_monitoring_route(
    any_ui: Page, ui_url: str, filled: dict[str, Any]
) -> None:
    page = any_ui.open("monitoring")
    page.wait_for_selector("#monitoring-state[data-enough='true']")
    live = monitoring(ui_url, filled["model_name"])
    for f in live["features"]:
        row = page.locator(f".psi-row[data-feature='{f['name']}']")
        assert float(row.get_attribute("data-psi") or "nan") == pytest.approx(f["psi"], abs=0.02)
        assert row.get_attribute("data-band") == band(float(row.get_attribute("data-psi") or "nan"))
        card = page.locator(f".dist-card[data-feature='{f['name']}']")
        assert card.locator(".dist-row").count() == len(f["bins"])
        first = f["bins"][0]
        assert f"{first['reference'] * 100:.1f}%" in card.locator(".dist-row").first.inner_text()
    legend = page.inner_text("#monitoring-state")
    assert "below 0.1" in legend and "0.1 to 0.25" in legend and "0.25 or more" in legend
    any_ui.shot(f"monitoring-filled-{page.viewport_size['width']}")


def test_the_view_refreshes_while_open_and_stops_polling_when_left(
    ui: Page, ui_url: str, champion_info: dict[str, Any], filled: dict[str, Any]
) -> None:
    page = ui.open("monitoring")
    page.wait_for_selector("#monitoring-state")
    seen = int(page.get_attribute("#monitoring-state", "data-rows-seen") or "0")
    score_rows(ui_url, champion_info, 7, skip=100)
    page.wait_for_function(
        f"() => +document.querySelector('#monitoring-state').dataset.rowsSeen >= {seen + 7}", timeout=15_000
    )
    ui.show("predict")
    page.wait_for_timeout(500)
    before = len([u for u in ui.requests if u.endswith("/monitoring")])
    page.wait_for_timeout(6_000)
    assert len([u for u in ui.requests if u.endswith("/monitoring")]) == before
