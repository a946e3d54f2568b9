"""The page when the predictor is down at load, comes up, goes away and comes back: it says what is wrong, keeps
trying, recovers by itself, and no error outlives the outage."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA_PATH
from tests.integration.ui_support import VIEWPORTS, page_at, running_nginx, running_predictor, screenshot
from tests.support import free_port

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.ui_support"]
pytest.importorskip("playwright.sync_api")


def attempt(page: Any) -> int:
    m = re.search(r"attempt (\d+)", page.inner_text("#fields [data-waiting]"))
    return int(m.group(1)) if m else -1


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_down_at_load_up_down_and_back_again(
    viewport: str, browser: Any, champion: dict[str, Any], tmp_path: Path
) -> None:
    port = free_port()
    width = VIEWPORTS[viewport]["width"]
    rows = "\n".join(DATA_PATH.read_text().splitlines()[:101]) + "\n"
    with running_nginx(tmp_path, upstream=f"http://127.0.0.1:{port}") as url, page_at(browser, url, viewport) as ui:
        page = ui.page
        page.goto(f"{url}/#predict")
        # Down at load: every view says the predictor is unreachable and that it keeps trying.
        page.wait_for_selector("#status[data-state='offline']")
        page.wait_for_function("() => /attempt \\d+/.test(document.querySelector('#fields [data-waiting]').innerText)")
        waiting = page.inner_text("#fields [data-waiting]")
        assert "unreachable" in waiting and "Retrying" in waiting and "Loading" not in waiting
        assert "unreachable" in page.inner_text("#model-body")
        assert "unreachable" in page.inner_text("#app-banner")
        first = attempt(page)
        page.wait_for_function(
            f"() => !document.querySelector('#fields [data-waiting]').innerText.includes('attempt {first})')"
        )
        assert attempt(page) > first  # it retries
        screenshot(page, f"down-at-load-{width}")

        with running_predictor(champion, port, tmp_path / "predictor-1.log"):
            page.wait_for_selector("#fields .field", state="attached", timeout=60_000)  # no reload needed
            page.wait_for_selector("#status[data-state='ready']")
            assert page.locator("#app-banner").is_hidden()
            ui.predict_preset(0)
            # A fresh predictor's drift window is below min_rows: the view says how many rows are still needed.
            ui.show("monitoring")
            page.wait_for_selector("#monitoring-state[data-enough='false']")
            assert re.search(r"\d+ of \d+ rows needed", page.inner_text("#monitoring-state"))
            ui.show("predict")

        # Gone: the pill and the banner say so; a live update fails with one clear, retryable error.
        page.wait_for_selector("#status[data-state='offline']", timeout=20_000)
        assert "resume by themselves" in page.inner_text("#app-banner")
        page.fill("#f-num_tickets", "3")
        page.wait_for_selector("#result-error:not([hidden])")
        assert "unreachable" in page.inner_text("#result-error")
        # Batch while it is gone: one error, nothing left saying "Scoring…", no list of unscored rows.
        ui.show("batch")
        page.set_input_files("#batch-file", files=[{"name": "c.csv", "mimeType": "text/csv", "buffer": rows.encode()}])
        page.wait_for_selector("#batch-error:not([hidden])")
        assert page.inner_text("#batch-error").startswith("Nothing was scored: The predictor is unreachable.")
        assert "Scoring" not in page.inner_text("#batch-progress-text")
        assert page.locator("#batch-invalid").is_hidden()
        assert page.locator("#batch-invalid-list li").count() == 0
        assert page.is_visible("#batch-retry")
        # The disabled Download button looks disabled: no gradient, a dashed outline.
        assert page.is_disabled("#batch-download")
        style = page.eval_on_selector(
            "#batch-download", "b => { const s = getComputedStyle(b); return [s.backgroundImage, s.borderTopStyle]; }"
        )
        assert style == ["none", "dashed"]
        screenshot(page, f"batch-offline-{width}")

        with running_predictor(champion, port, tmp_path / "predictor-2.log"):
            page.wait_for_selector("#status[data-state='ready']", timeout=30_000)
            # Back: the errors are gone, the interrupted prediction ran again by itself.
            page.wait_for_selector("#batch-error", state="hidden")
            assert "back" in page.inner_text("#batch-recovered")
            ui.show("predict")
            page.wait_for_selector("#result[data-state='done']", timeout=15_000)
            assert page.locator("#result-error").is_hidden()
            assert page.locator("#app-banner").is_hidden()
            ui.show("batch")
            page.click("#batch-retry")
            page.wait_for_selector("#batch-download:not([disabled])", timeout=60_000)
            assert page.locator("#batch-error").is_hidden()
            assert page.inner_text("#batch-progress-text") == "Scored 100 of 100 valid row(s)."
