"""axe-core on every view at 1440×900 and 360×800, each in its filled state, with a screenshot of each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA_PATH
from tests.integration.ui_support import VIEWPORTS, VIEWS, Page, axe_script, page_at, run_axe

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.ui_support"]
pytest.importorskip("playwright.sync_api")

BLOCKING = {"serious", "critical"}


@pytest.fixture(scope="module")
def axe() -> Path:
    return axe_script()


@pytest.fixture(params=list(VIEWPORTS))
def scanned(request: pytest.FixtureRequest, browser: Any, ui_url: str) -> Iterator[Page]:
    # add_script_tag writes axe as an inline script, which the page's CSP (rightly) refuses: bypass it here only.
    with page_at(browser, ui_url, request.param, bypass_csp=True) as page:
        yield page


def fill(ui: Page, view: str) -> None:
    """Bring a view into the state a person sees after using it."""
    page = ui.page
    if view == "predict":
        ui.predict_preset(0)
        page.click("#logodds summary")
    elif view == "batch":
        text = "\n".join(DATA_PATH.read_text().splitlines()[:61]) + "\n"
        page.set_input_files(
            "#batch-file", files=[{"name": "churn.csv", "mimeType": "text/csv", "buffer": text.encode()}]
        )
        page.wait_for_selector("#batch-download:not([disabled])", timeout=60_000)
    elif view == "model":
        page.wait_for_selector("#comparison .metric")
    elif view == "monitoring":
        page.wait_for_selector("#monitoring-state")
    page.wait_for_timeout(900)  # transitions (gauge, bars) settle before colours are measured


@pytest.mark.parametrize("view", VIEWS)
def test_no_serious_or_critical_accessibility_violations(scanned: Page, axe: Path, view: str) -> None:
    page = scanned.open(view)
    if view != "predict":
        scanned.show(view)
    fill(scanned, view)
    violations = run_axe(page, axe)
    width = VIEWPORTS[scanned.viewport]["width"]
    scanned.shot(f"{view}-{width}")
    by_impact: dict[str, list[str]] = {}
    for v in violations:
        by_impact.setdefault(v["impact"] or "unknown", []).append(f"{v['id']} ({len(v['nodes'])})")
    print(f"axe {view} {width}px: {by_impact or 'no violations'}")
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert blocking == [], "\n".join(
        f"{v['impact']}: {v['id']} {v['help']}: " + "; ".join(n["target"] for n in v["nodes"][:5]) for v in blocking
    )
