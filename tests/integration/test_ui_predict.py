"""The Predict view as issue 15 asks: live, bounded updates; the explanation as a waterfall in probability terms;
the tiers and the threshold in words; advice from the drivers; the result brought on screen on a phone."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import requests

from tests.integration.ui_support import Page, api_predict, instance_of, percent

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.ui_support"]
pytest.importorskip("playwright.sync_api")


def explain(ui_url: str, name: str, instance: dict[str, Any]) -> dict[str, Any]:
    r = requests.post(f"{ui_url}/v1/models/{name}:explain", json={"instances": [instance]}, timeout=30)
    r.raise_for_status()
    first: dict[str, Any] = r.json()["explanations"][0]
    return first


def test_typing_a_value_makes_one_bounded_update_and_marks_the_result_outdated_meanwhile(any_ui: Page) -> None:
    page = any_ui.open()
    any_ui.predict_preset(0)
    page.wait_for_timeout(500)  # the preset's own debounced update has gone
    before = len(any_ui.requests)
    page.fill("#f-monthly_charges", "")
    page.type("#f-monthly_charges", "77.25", delay=40)  # five characters, each an input event
    assert page.get_attribute("#result", "data-state") == "stale"
    assert "updating" in page.inner_text("#result-stale")
    page.wait_for_function("() => document.querySelector('#probability').dataset.probability !== ''")
    page.wait_for_selector("#result[data-state='done']")
    page.wait_for_timeout(800)  # nothing more follows
    sent = any_ui.predict_requests(before)
    assert 1 <= len(sent) <= 2, sent
    assert page.locator("#result-stale").is_hidden()


def test_the_waterfall_runs_from_the_base_value_to_the_prediction_in_probability(
    any_ui: Page, ui_url: str, champion_info: dict[str, Any]
) -> None:
    page = any_ui.open()
    any_ui.predict_preset(0)
    name = champion_info["model_name"]
    instance = instance_of(champion_info["presets"][0], champion_info)
    want = explain(ui_url, name, instance)
    probability = api_predict(ui_url, name, [instance])[0]["churn_probability"]
    start = float(page.get_attribute("#drivers-list [data-anchor='base']", "data-probability") or "nan")
    end = float(page.get_attribute("#drivers-list [data-anchor='prediction']", "data-probability") or "nan")
    assert start == pytest.approx(1 / (1 + math.exp(-want["base_value"])))
    assert end == pytest.approx(probability, abs=1e-9)
    assert percent(probability) in page.inner_text("#drivers-list [data-anchor='prediction']")
    steps = page.eval_on_selector_all(
        "#drivers-list li.driver",
        "els => els.map(e => ({feature: e.dataset.feature || null, lo: +e.dataset.logOdds,"
        " from: +e.dataset.from, to: +e.dataset.to, up: e.classList.contains('up'), text: e.innerText}))",
    )
    # Consecutive: each step starts where the last ended, from the base value to the prediction.
    assert steps[0]["from"] == pytest.approx(start)
    for a, b in itertools.pairwise(steps):
        assert b["from"] == pytest.approx(a["to"])
    assert steps[-1]["to"] == pytest.approx(end)
    named = [s for s in steps if s["feature"]]
    magnitudes = [abs(want["contributions"][s["feature"]]) for s in named]
    assert magnitudes == sorted(magnitudes, reverse=True)  # largest effects first
    for s in named:
        assert s["lo"] == pytest.approx(want["contributions"][s["feature"]])
        assert s["up"] == (s["lo"] > 0)
        assert "pts" in s["text"]  # probability points, not log-odds
    # The model's own scale, on request: the same contributions in log-odds.
    assert page.locator("#logodds").is_visible()
    page.click("#logodds summary")
    for feature, value in want["contributions"].items():
        cell = page.inner_text(f"#logodds-body tr[data-feature='{feature}'] td")
        assert float(cell.replace("−", "-")) == pytest.approx(value, abs=5e-4)
    assert "log-odds" in (page.get_attribute("#drivers-list li.driver", "title") or "")


def test_tiers_and_threshold_are_explained_and_agree_with_the_predictor(
    any_ui: Page, ui_url: str, champion_info: dict[str, Any]
) -> None:
    page = any_ui.open()
    threshold = champion_info["threshold"]
    legend = page.locator("#tier-legend")
    high = float(legend.get_attribute("data-high") or "nan")
    medium = float(legend.get_attribute("data-medium") or "nan")
    assert high == pytest.approx(threshold)
    text = legend.inner_text()
    assert f"{percent(high)} or more" in text and f"below {percent(medium)}" in text
    # Every preset's tier from the predictor falls where the page says the tiers are.
    for i, preset in enumerate(champion_info["presets"]):
        any_ui.predict_preset(i)
        got = api_predict(ui_url, champion_info["model_name"], [instance_of(preset, champion_info)])[0]
        p = got["churn_probability"]
        stated = "high" if p >= high else "medium" if p >= medium else "low"
        assert got["risk"] == stated
        note = page.inner_text("#tier-note")
        assert (percent(p) in note and percent(threshold) in note) or percent(medium) in note
        if got["risk"] == "medium":  # "Medium risk · Likely to stay" explained, not contradicted
            assert page.inner_text("#verdict") == "Likely to stay"
            assert "below the" in note and "medium risk" in note


def test_advice_names_the_driver_that_raises_the_risk_most(
    ui: Page, ui_url: str, champion_info: dict[str, Any]
) -> None:
    page = ui.open()
    ui.predict_preset(0)  # the high-risk customer
    instance = instance_of(champion_info["presets"][0], champion_info)
    contributions = explain(ui_url, champion_info["model_name"], instance)["contributions"]
    top = max(contributions, key=lambda k: contributions[k])
    assert contributions[top] > 0
    label = page.inner_text(f"#drivers-list li[data-feature='{top}'] .driver-name").splitlines()[0].strip()
    advice = page.inner_text("#advice")
    assert f"{label} " in advice and "raises the risk most" in advice
    assert advice.index(label) < advice.index("raises the risk most")


def test_on_a_phone_predict_brings_the_result_on_screen_and_focuses_it(phone: Page) -> None:
    page = phone.open()
    page.click("[data-preset='0']")
    page.wait_for_selector("#result[data-state='done']")  # the live update: nothing scrolls while editing
    page.evaluate("window.scrollTo(0, 0)")
    page.click("#predict-submit")
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'result-title'")
    page.wait_for_function(
        "() => { const r = document.querySelector('#result').getBoundingClientRect();"
        " return r.top >= 0 && r.top < window.innerHeight - 200; }"
    )
    # Scrolled back to the form, a bar at the bottom shows the result and leads back to it.
    page.evaluate("window.scrollTo(0, 0)")
    peek = page.locator("#peek")
    peek.wait_for(state="visible")
    assert page.inner_text("#probability") in peek.inner_text()
    box = peek.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 800
    peek.click()
    page.wait_for_function("() => document.activeElement.id === 'result-title'")
