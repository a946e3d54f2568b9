"""The UI in headless Chromium, served by the shipped nginx.conf in front of a real predictor."""

from __future__ import annotations

import csv
import gzip
import io
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import DATA_PATH
from tests.integration.ui_support import (
    NGINX,
    Page,
    api_predict,
    csv_cell,
    instance_of,
    page_at,
    percent,
    running_nginx,
    screenshot,
)
from tests.support import PYTHON, free_port, running

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.ui_support"]
pytest.importorskip("playwright.sync_api")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def features(info: dict[str, Any]) -> list[dict[str, Any]]:
    return list(info["spec"]["features"])


def bounded_numeric(info: dict[str, Any]) -> dict[str, Any]:
    return next(f for f in features(info) if f["type"] != "category" and f["max"] is not None)


# --- Predict -------------------------------------------------------------------------------------------


def test_form_renders_every_spec_feature_with_its_bounds_and_labels(ui: Page, champion_info: dict[str, Any]) -> None:
    page = ui.open()
    rendered = page.eval_on_selector_all("#fields .field", "els => els.map(e => e.dataset.feature)")
    assert rendered == [f["name"] for f in features(champion_info)]
    for f in features(champion_info):
        control = page.locator(f"#f-{f['name']}")
        assert page.locator(f"label[for='f-{f['name']}']").inner_text().strip() != ""
        if f["type"] == "category":
            options = control.locator("option").all_inner_texts()
            labels = f["labels"] or {}
            assert options == [labels.get(str(v), str(v)) for v in f["values"]]
        else:
            assert float(control.get_attribute("min") or "nan") == f["min"]
            assert float(control.get_attribute("max") or "nan") == f["max"]
            slider = page.locator(f"[data-slider='{f['name']}']")  # the slider spans what training saw
            seen = champion_info["training_ranges"][f["name"]]
            assert float(slider.get_attribute("min") or "nan") == seen["min"]
            assert float(slider.get_attribute("max") or "nan") == seen["max"]
        if f["description"]:
            assert f["description"] in page.locator(f"#hint-{f['name']}").inner_text()


def test_a_preset_fills_the_form_and_the_slider_follows(ui: Page, champion_info: dict[str, Any]) -> None:
    page = ui.open()
    presets = champion_info["presets"]
    assert presets, "the model card has no presets"
    for i, preset in enumerate(presets):
        page.click(f"[data-preset='{i}']")
        for f in features(champion_info):
            value = page.input_value(f"#f-{f['name']}")
            expected = preset["features"][f["name"]]
            if f["type"] == "category":
                assert value == csv_cell(expected)
            else:
                assert float(value) == pytest.approx(expected)
                assert float(page.input_value(f"[data-slider='{f['name']}']")) == pytest.approx(expected)
    numeric = bounded_numeric(champion_info)
    top = champion_info["training_ranges"][numeric["name"]]["max"]
    page.fill(f"[data-slider='{numeric['name']}']", str(top))
    assert float(page.input_value(f"#f-{numeric['name']}")) == top


def test_predict_shows_the_probability_the_api_returns_and_its_drivers(
    ui: Page, ui_url: str, champion_info: dict[str, Any]
) -> None:
    page = ui.open()
    name = champion_info["model_name"]
    for i, preset in enumerate(champion_info["presets"]):
        ui.predict_preset(i)
        expected = api_predict(ui_url, name, [instance_of(preset, champion_info)])[0]
        shown = page.locator("#probability")
        assert shown.inner_text() == percent(expected["churn_probability"])
        assert float(shown.get_attribute("data-probability") or "nan") == expected["churn_probability"]
        assert page.inner_text("#verdict") == ("Likely to churn" if expected["churn"] == 1 else "Likely to stay")
        assert page.get_attribute("#risk-badge", "data-risk") == expected["risk"]
        assert page.inner_text("#advice").strip() != ""
        drivers = page.eval_on_selector_all("#drivers-list li[data-feature]", "els => els.map(e => e.dataset.feature)")
        assert 0 < len(drivers) <= 5
        assert set(drivers) <= {f["name"] for f in features(champion_info)}
        if i == 0:
            ui.shot("predict")


def test_defaults_and_sliders_follow_the_training_data_and_extrapolations_are_flagged(
    ui: Page, champion_info: dict[str, Any]
) -> None:
    page = ui.open()
    ranges = champion_info["training_ranges"]
    charges = next(f for f in features(champion_info) if f["name"] == "monthly_charges")
    seen = ranges["monthly_charges"]
    assert seen["max"] < charges["max"]  # the spec allows more than training ever saw
    slider = page.locator("[data-slider='monthly_charges']")
    assert float(slider.get_attribute("max") or "nan") == seen["max"]
    assert float(page.input_value("#f-monthly_charges")) == pytest.approx(seen["q50"], abs=0.005)  # the median
    assert float(page.get_attribute("#f-monthly_charges", "max") or "nan") == charges["max"]
    page.click("#predict-submit")
    page.wait_for_selector("#result[data-state='done']")
    assert page.locator("#extrapolation").is_hidden()
    page.fill("#f-monthly_charges", str(charges["max"]))
    page.click("#predict-submit")
    page.wait_for_selector("#extrapolation:not([hidden])")
    note = page.inner_text("#extrapolation")
    assert note.startswith("Outside what the model was trained on: Monthly charges") and "extrapolation" in note


def test_a_result_is_marked_outdated_until_the_live_update_arrives(ui: Page) -> None:
    page = ui.open()
    ui.predict_preset(0)
    assert page.get_attribute("[data-preset='0']", "aria-pressed") == "true"
    assert page.locator("#result-stale").is_hidden()
    page.fill("#f-num_tickets", "1")
    page.wait_for_selector("#result[data-state='stale']")
    assert "updating" in page.inner_text("#result-stale")
    assert page.get_attribute("#drivers", "data-state") == "stale"
    assert page.get_attribute("[data-preset='0']", "aria-pressed") == "false"  # no preset describes the form now
    page.wait_for_selector("#result[data-state='done']")  # no click: the update comes by itself
    assert page.locator("#result-stale").is_hidden()
    assert page.get_attribute("#drivers", "data-state") == ""
    page.click("[data-preset='1']")  # a preset changes the form too
    page.wait_for_selector("#result[data-state='stale']")
    page.wait_for_selector("#result[data-state='done']")


def test_an_out_of_range_value_is_refused_with_a_message(ui: Page, champion_info: dict[str, Any]) -> None:
    page = ui.open()
    f = bounded_numeric(champion_info)
    too_big = f["max"] + (1 if f["type"] == "integer" else (f["step"] or 0.01))
    before = len(ui.requests)
    page.fill(f"#f-{f['name']}", csv_cell(too_big))
    error = page.locator(f"#err-{f['name']}")
    error.wait_for(state="visible")  # the live check, before any click
    assert "at most" in error.inner_text()
    assert page.evaluate("document.activeElement.id") == f"f-{f['name']}"  # typing is not interrupted
    page.click("#predict-submit")
    assert page.get_attribute(f"#f-{f['name']}", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == f"f-{f['name']}"
    assert not [u for u in ui.requests[before:] if ":predict" in u], "an invalid form reached the predictor"
    assert page.inner_text("#probability") == "—"
    ui.shot("predict-invalid", full_page=False)


def test_server_errors_name_the_field_and_never_show_an_object(ui: Page, champion_info: dict[str, Any]) -> None:
    """The predictor's 4xx body reaches the UI as a message plus the offending field (as shown next to it)."""
    page = ui.open()
    f = bounded_numeric(champion_info)
    instance = instance_of(champion_info["presets"][0], champion_info) | {f["name"]: f["max"] * 10 + 1}
    result = page.evaluate(
        """async (instance) => {
            const api = await import('/js/api.js');
            try { await api.predict([instance]); return {ok: true}; }
            catch (e) { return {message: e.message, status: e.status, details: e.details}; }
        }""",
        instance,
    )
    assert 400 <= result["status"] < 500
    assert "[object Object]" not in result["message"]
    assert result["details"][0]["field"] == f["name"]
    assert isinstance(result["details"][0]["rule"], str)


# --- Batch ---------------------------------------------------------------------------------------------


def test_batch_scores_a_csv_in_chunks_and_lists_the_invalid_row(
    ui: Page, ui_url: str, champion_info: dict[str, Any]
) -> None:
    page = ui.open("batch")
    names = [f["name"] for f in features(champion_info)]
    presets = champion_info["presets"]
    bad_feature = bounded_numeric(champion_info)
    rows: list[list[str]] = []
    for i in range(250):  # more than one 200-row chunk
        preset = presets[i % len(presets)]
        rows.append([f"c{i}", *(csv_cell(preset["features"][n]) for n in names)])
    bad = dict(zip(names, rows[6][1:], strict=True)) | {bad_feature["name"]: csv_cell(bad_feature["max"] + 1)}
    rows[6] = ["c6", *(bad[n] for n in names)]  # data row 7 = file line 8
    text = "\n".join(",".join(r) for r in [["customer_id", *names], *rows]) + "\n"
    page.set_input_files(
        "#batch-file", files=[{"name": "customers.csv", "mimeType": "text/csv", "buffer": text.encode()}]
    )
    page.wait_for_selector("#batch-download:not([disabled])", timeout=60_000)

    assert page.eval_on_selector("#batch-progress", "p => p.value === p.max && p.max === 249")
    invalid = page.locator("#batch-invalid-list li")
    assert invalid.count() == 1
    assert invalid.first.get_attribute("data-line") == "8"
    assert f'{bad_feature["name"]} "{csv_cell(bad_feature["max"] + 1)}"' in invalid.first.inner_text()
    top = page.locator("#batch-top-table tbody tr")
    assert top.count() == 25  # the first page of every scored row
    shown = [
        float(x)
        for x in page.eval_on_selector_all(
            "#batch-top-table [data-probability]", "els => els.map(e => e.dataset.probability)"
        )
    ]
    assert shown == sorted(shown, reverse=True)
    with page.expect_download() as dl:
        page.click("#batch-download")
    assert dl.value.suggested_filename == "customers-scored.csv"
    out = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert len(out) == 250
    assert out[6]["churn_probability"] == ""
    assert bad_feature["name"] in out[6]["error"]
    expected = api_predict(ui_url, champion_info["model_name"], [instance_of(p, champion_info) for p in presets])
    for i, row in enumerate(out):
        if i == 6:
            continue
        want = expected[i % len(presets)]
        assert row["customer_id"] == f"c{i}"
        assert float(row["churn_probability"]) == want["churn_probability"]
        assert (int(row["churn"]), row["risk"], row["error"]) == (want["churn"], want["risk"], "")


# --- Model, About, status ------------------------------------------------------------------------------


def test_batch_keeps_a_label_column_and_writes_the_verdict_next_to_it(ui: Page) -> None:
    """The committed training CSV itself, label column `churn` and all: scored, the label kept as it was."""
    page = ui.open("batch")
    text = "\n".join(DATA_PATH.read_text().splitlines()[:41]) + "\n"
    page.set_input_files("#batch-file", files=[{"name": "churn.csv", "mimeType": "text/csv", "buffer": text.encode()}])
    page.wait_for_selector("#batch-download:not([disabled])", timeout=60_000)
    assert "the file's own churn kept" in page.inner_text("#batch-file-name")
    assert page.locator("#batch-error").is_hidden()
    with page.expect_download() as dl:
        page.click("#batch-download")
    out = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    source = list(csv.DictReader(io.StringIO(text)))
    assert len(out) == 40 and [r["churn"] for r in out] == [r["churn"] for r in source]
    assert all(r["predicted_churn"] in ("0", "1") and float(r["churn_probability"]) >= 0 for r in out)


def test_about_lists_the_api_and_the_status_pill_shows_the_served_version(
    ui: Page, champion_info: dict[str, Any]
) -> None:
    page = ui.open("about")
    name = champion_info["model_name"]
    endpoints = page.inner_text("#endpoints")
    for path in (
        f"/v1/models/{name}/info",
        f"/v1/models/{name}:predict",
        f"/v1/models/{name}:explain",
        "/v2/health/ready",
    ):
        assert path in endpoints
    assert page.inner_text("#status-text") == f"Ready · v{champion_info['model_version']}"


def test_the_page_learns_the_model_name_from_the_server(
    browser: Any, champion: dict[str, Any], champion_info: dict[str, Any], tmp_path: Path
) -> None:
    """The chart's modelName (CHURN_MODEL_NAME) renames every route; the same page bytes must follow."""
    port = free_port()
    predictor = f"http://127.0.0.1:{port}"
    env = {
        "MLFLOW_TRACKING_URI": champion["tracking_uri"],
        "CHURN_MODEL_NAME": "acme-churn",
        "CHURN_MODEL_URI": f"models:/churnguard/{champion['version']}",
        "CHURN_TRACING": "false",
    }
    cmd = [PYTHON, "-m", "predictor", "--http_port", str(port)]
    ready = f"{predictor}/v2/health/ready"
    with (
        running(cmd, env=env, log=tmp_path / "predictor.log", ready_url=ready, timeout=90),
        running_nginx(tmp_path, upstream=predictor) as url,
        page_at(browser, url) as ui,
    ):
        page = ui.open()
        ui.predict_preset(0)
        expected = api_predict(url, "acme-churn", [instance_of(champion_info["presets"][0], champion_info)])
        assert page.inner_text("#probability") == percent(expected[0]["churn_probability"])
        ui.show("monitoring")
        page.wait_for_selector("#monitoring-state")
        ui.show("about")
        assert "/v1/models/acme-churn:predict" in page.inner_text("#endpoints")
        assert not [r for r in ui.requests if "/models/churnguard" in r]


def test_page_makes_no_request_outside_its_origin(ui: Page) -> None:
    page = ui.open()
    ui.predict_preset(0)
    for view in ("batch", "model", "monitoring", "about", "predict"):
        ui.show(view)
    page.wait_for_timeout(1500)  # let a readiness poll and any lazy request happen
    origin = urlsplit(ui.base)
    foreign = [u for u in ui.requests if urlsplit(u.removeprefix("blob:"))[:2] != origin[:2]]
    assert ui.requests and foreign == []


def test_without_a_predictor_the_pill_says_offline_and_nginx_answers_json(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """nginx in front of a closed port: the page still loads, says so, and invents nothing."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"nginx not installed at {NGINX} (sudo make system-deps)")
    with running_nginx(tmp_path_factory.mktemp("nginx-dead"), upstream=f"http://127.0.0.1:{free_port()}") as url:
        r = requests.get(f"{url}/v2/health/ready", timeout=10)
        assert r.status_code == 502 and r.json()["error"] == "The predictor is unreachable."
        assert_security_headers(r)
        with page_at(browser, url) as ui:
            page = ui.page
            page.goto(f"{url}/#predict")
            page.wait_for_selector("#status[data-state='offline']")
            assert page.inner_text("#status-text") == "Offline"
            assert "unreachable" in page.inner_text("#app-banner")
            assert page.is_disabled("#predict-submit")
            assert page.inner_text("#probability") == "—"
            screenshot(page, "offline-1440")


def test_every_view_fits_a_360_px_screen(phone: Page) -> None:
    page = phone.open()
    phone.predict_preset(0)
    for view in ("predict", "batch", "model", "monitoring", "about"):
        phone.show(view)
        page.wait_for_timeout(300)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, f"{view} scrolls sideways"


def test_controls_are_keyboard_reachable_and_labelled(ui: Page) -> None:
    page = ui.open()
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, button')].filter(el =>
            !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim()
        ).map(el => el.id || el.outerHTML.slice(0, 60))"""
    )
    assert unlabelled == []
    reached = set()
    for _ in range(60):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.id || document.activeElement.dataset.view || ''"))
    assert {"predict-submit", "f-" + page.eval_on_selector("#fields .field", "e => e.dataset.feature")} <= reached
    assert {"batch", "model", "monitoring", "about"} <= reached


# --- nginx ---------------------------------------------------------------------------------------------


def assert_security_headers(r: requests.Response) -> None:
    assert r.headers["Content-Security-Policy"] == CSP
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Server"] == "nginx"  # server_tokens off: no version


def test_nginx_serves_the_page_with_security_and_cache_headers(ui_url: str) -> None:
    r = requests.get(f"{ui_url}/", timeout=10)
    assert r.status_code == 200 and '<script type="module" src="js/app.js">' in r.text
    assert_security_headers(r)
    assert r.headers["Cache-Control"] == "no-cache"


def test_nginx_gzips_javascript_with_a_short_cache(ui_url: str) -> None:
    r = requests.get(f"{ui_url}/js/app.js", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Content-Type"].startswith("text/javascript")
    assert r.headers["Cache-Control"] == "public, max-age=300"
    assert_security_headers(r)
    assert b"import" in gzip.decompress(r.raw.read())


def test_nginx_answers_healthz_itself(ui_url: str) -> None:
    r = requests.get(f"{ui_url}/healthz", timeout=10)
    assert (r.status_code, r.text) == (200, "ok\n")
    assert_security_headers(r)


def test_nginx_proxies_the_predictor_with_the_same_headers(ui_url: str, predictor_url: str) -> None:
    r = requests.get(f"{ui_url}/v2/health/ready", timeout=10)
    direct = requests.get(f"{predictor_url}/v2/health/ready", timeout=10)
    assert r.status_code == 200 and r.json() == direct.json()
    assert_security_headers(r)
    assert r.headers["Cache-Control"] == "no-store"


def test_nginx_keeps_security_headers_on_proxied_errors(ui_url: str, champion_info: dict[str, Any]) -> None:
    r = requests.post(f"{ui_url}/v1/models/{champion_info['model_name']}:predict", json={"instances": []}, timeout=10)
    assert 400 <= r.status_code < 500 and isinstance(r.json()["error"], str)
    assert_security_headers(r)


def test_nginx_limits_bodies_lists_no_directories_and_hides_the_rest_of_the_predictor(ui_url: str) -> None:
    big = requests.post(f"{ui_url}/v1/models/x:predict", data=b"x" * (3 * 1024 * 1024), timeout=30)
    assert big.status_code == 413
    assert requests.get(f"{ui_url}/js/", timeout=10).status_code == 403
    assert requests.get(f"{ui_url}/metrics", timeout=10).status_code == 404
