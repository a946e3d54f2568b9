"""The Batch view as issue 15 asks: every row (paged, sortable, filterable), a histogram, the file's own labels
compared in the browser, bad values quoted in each error, and a download named after the uploaded file."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

from tests.conftest import DATA_PATH
from tests.integration.ui_support import Page

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.ui_support"]
pytest.importorskip("playwright.sync_api")

ROWS = 120


def upload(page: Any, name: str, text: str) -> None:
    page.set_input_files("#batch-file", files=[{"name": name, "mimeType": "text/csv", "buffer": text.encode()}])
    page.wait_for_selector("#batch-download:not([disabled])", timeout=60_000)


def labelled_csv(rows: int = ROWS) -> str:
    return "\n".join(DATA_PATH.read_text().splitlines()[: rows + 1]) + "\n"


def downloaded(page: Any) -> tuple[str, list[dict[str, str]]]:
    with page.expect_download() as dl:
        page.click("#batch-download")
    return dl.value.suggested_filename, list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))


def lines_on_page(page: Any) -> list[int]:
    return [
        int(x) for x in page.eval_on_selector_all("#batch-top-table tbody tr", "els => els.map(e => e.dataset.line)")
    ]


def column(page: Any, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.innerText)")


def test_every_row_is_listed_paged_sortable_and_filterable(any_ui: Page) -> None:
    page = any_ui.open("batch")
    upload(page, "churn.csv", labelled_csv())
    _, out = downloaded(page)
    probability = {i + 2: float(r["churn_probability"]) for i, r in enumerate(out)}
    # Every scored row, 25 a page, highest probability first.
    assert page.inner_text("#batch-page").startswith(f"Rows 1–25 of {ROWS}")
    seen: list[int] = []
    while True:
        seen += lines_on_page(page)
        if page.is_disabled("#batch-next"):
            break
        page.click("#batch-next")
    assert sorted(seen) == sorted(probability)
    assert [probability[n] for n in seen] == sorted(probability.values(), reverse=True)
    # Sort by a column heading, both ways.
    page.click("[data-sort='probability']")  # second click on the active column: lowest first
    assert page.get_attribute("th[aria-sort]", "aria-sort") == "ascending"
    first = [probability[n] for n in lines_on_page(page)]
    assert first == sorted(probability.values())[:25]
    page.click("[data-sort='f:tenure_months']")
    tenure = {i + 2: int(r["tenure_months"]) for i, r in enumerate(out)}
    shown = [tenure[n] for n in lines_on_page(page)]
    assert shown == sorted(tenure.values())[:25]
    # Filter by tier: only that tier, and all of it.
    page.select_option("#batch-filter", "high")
    highs = sum(1 for r in out if r["risk"] == "high")
    assert page.inner_text("#batch-page").startswith(f"Rows 1–{min(25, highs)} of {highs}")
    assert set(column(page, "#batch-top-table tbody .badge")) == {"High risk"}
    # The probability and risk come first, so a phone sees them without scrolling the table.
    for heading in ("probability", "risk"):
        box = page.locator(f"[data-sort='{heading}']").bounding_box()
        assert box is not None and box["x"] + box["width"] <= page.viewport_size["width"]
    any_ui.shot(f"batch-table-{page.viewport_size['width']}")


def test_the_histogram_counts_every_scored_probability(ui: Page, champion_info: dict[str, Any]) -> None:
    page = ui.open("batch")
    upload(page, "churn.csv", labelled_csv())
    _, out = downloaded(page)
    counts = [int(c) for c in (page.get_attribute("#batch-hist-chart svg", "data-counts") or "").split(",")]
    assert len(counts) == 20 and sum(counts) == ROWS
    want = [0] * 20
    for r in out:
        want[min(19, int(float(r["churn_probability"]) * 20))] += 1
    assert counts == want
    assert f"threshold {champion_info['threshold'] * 100:.1f}%" in page.inner_text("#batch-hist-chart")


def test_a_file_with_labels_gets_its_confusion_matrix_roc_auc_and_f1(ui: Page) -> None:
    page = ui.open("batch")
    upload(page, "churn.csv", labelled_csv())
    _, out = downloaded(page)
    y = [int(r["churn"]) for r in out]
    verdict = [int(r["predicted_churn"]) for r in out]
    p = [float(r["churn_probability"]) for r in out]
    shown = {
        k: page.inner_text(f"#batch-labels [data-label-metric='{k}']") for k in ("roc_auc", "f1", "accuracy", "rows")
    }
    assert shown["roc_auc"] == f"{roc_auc_score(y, p):.3f}"
    assert shown["f1"] == f"{f1_score(y, verdict):.3f}"
    assert shown["rows"] == str(ROWS)
    tn, fp, fn, tp = (int(x) for x in confusion_matrix(y, verdict).ravel())
    cells = {
        c: int(page.text_content(f"#batch-labels svg [data-cell='{c}'] + text") or "") for c in ("tn", "fp", "fn", "tp")
    }
    assert cells == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    page.select_option("#batch-filter", "wrong")
    assert page.inner_text("#batch-page").endswith(f"of {fp + fn} · page 1 of {max(1, -(-(fp + fn) // 25))}")


def test_errors_quote_the_bad_value_and_the_download_is_named_after_the_file(
    ui: Page, champion_info: dict[str, Any]
) -> None:
    page = ui.open("batch")
    lines = labelled_csv(5).splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    rows[0][header.index("contract_type")] = "7"
    rows[1][header.index("monthly_charges")] = "12,5"  # a comma: one cell too many
    rows[2][header.index("age")] = ""
    rows[3][header.index("monthly_charges")] = "abc"
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    upload(page, "March Customers.CSV", text)
    errors = dict(
        zip(
            page.eval_on_selector_all("#batch-invalid-list li", "els => els.map(e => +e.dataset.line)"),
            column(page, "#batch-invalid-list li"),
            strict=True,
        )
    )
    assert 'contract_type "7": Must be one of' in errors[2]
    assert "has 7 cells, the header has 6" in errors[3]
    assert "age (empty): A value is required." in errors[4]
    assert 'monthly_charges "abc": Enter a number.' in errors[5]
    assert 6 not in errors
    name, out = downloaded(page)
    assert name == "March Customers-scored.csv"
    assert page.inner_text("#batch-download-note") == f"Saved as {name}."
    assert [r["error"] != "" for r in out] == [True, True, True, True, False]
