"""The Grafana dashboard as the chart renders it: it is monitoring/dashboard.py's output, and its structure holds
(ids, datasource variable, units, a parsable query on every panel, rate windows that follow the scrape interval)."""

from __future__ import annotations

import json
import re
from typing import Any

import promql_parser
import pytest

from monitoring import dashboard as source
from tests.chart.render import dashboard_json

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ROWS = [
    "Status",
    "Traffic",
    "Latency",
    "Predictions",
    "Data drift",
    "Live quality",
    "Challenger in shadow",
    "Model lifecycle",
    "Process",
]
GRAFANA_VALUES = {"__rate_interval": "1m", "__range": "1h", "__interval": "1m", "model_version": ".*", "feature": "age"}


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(dashboard_json())
    return loaded


@pytest.fixture(scope="module")
def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return list(source.panels(board))


def exprs(panels: list[dict[str, Any]]) -> list[str]:
    return [t["expr"] for p in panels for t in p["targets"]]


def test_the_chart_ships_exactly_the_generated_dashboard() -> None:
    assert dashboard_json() == source.render().encode(), "run: python -m monitoring.dashboard"


def test_identity_refresh_and_variables(board: dict[str, Any]) -> None:
    assert board["uid"] == "churnguard"
    assert board["refresh"] == "10s"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    version = variables["model_version"]
    assert version["type"] == "query"
    assert version["datasource"] == DATASOURCE
    assert version["definition"] == "label_values(churnguard_model_info, model_version)"
    assert version["includeAll"] and version["allValue"] == ".*"


def test_panel_ids_are_unique_and_panels_do_not_overlap(board: dict[str, Any]) -> None:
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine


def test_at_least_24_panels_in_the_nine_rows(board: dict[str, Any], panels: list[dict[str, Any]]) -> None:
    assert board["panels"][0]["type"] == "row"
    assert [p["title"] for p in board["panels"] if p["type"] == "row"] == ROWS
    assert len(panels) >= 24
    titles = [p["title"] for p in board["panels"]]
    for row, next_row in zip(ROWS, [*ROWS[1:], None], strict=True):
        start = titles.index(row) + 1
        end = titles.index(next_row) if next_row else len(titles)
        assert end - start >= 3, f"row {row} has {end - start} panels"


def test_every_panel_and_query_uses_the_datasource_variable(panels: list[dict[str, Any]]) -> None:
    for p in panels:
        assert p["datasource"] == DATASOURCE, p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE, p["title"]


def test_every_panel_has_a_unit_and_a_query(panels: list[dict[str, Any]]) -> None:
    for p in panels:
        assert p["fieldConfig"]["defaults"]["unit"], f"{p['title']} has no unit"
        assert p["targets"], f"{p['title']} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip(), f"{p['title']} has an empty query"


def test_every_query_parses_as_promql(panels: list[dict[str, Any]]) -> None:
    for expr in exprs(panels):
        expanded = source.expand(expr, GRAFANA_VALUES)
        assert "$" not in expanded, expanded
        promql_parser.parse(expanded)


def test_range_windows_follow_the_scrape_interval(panels: list[dict[str, Any]]) -> None:
    """A fixed window like [1m] breaks with a 30 s scrape interval or is noisy with 1 s; Grafana picks the size."""
    for expr in exprs(panels):
        for window in re.findall(r"\[([^\]]*)\]", expr):
            assert window in ("$__rate_interval", "$__range"), expr


def test_the_issue_s_panels_are_there(panels: list[dict[str, Any]]) -> None:
    by_title = {p["title"]: p for p in panels}
    text = "\n".join(exprs(panels))
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(churnguard_inference_seconds_bucket" in text
        assert (
            f"histogram_quantile({q}, sum by (route, le) (rate(churnguard_http_request_duration_seconds_bucket" in text
        )
    heatmap = by_title["Churn probability distribution"]
    assert heatmap["type"] == "heatmap"
    assert heatmap["targets"][0]["format"] == "heatmap"
    assert "churnguard_churn_probability_bucket" in heatmap["targets"][0]["expr"]
    version = by_title["Served model version"]
    assert version["options"]["reduceOptions"]["fields"] == "/^model_version$/"
    assert "churnguard_model_info" in version["targets"][0]["expr"]
    assert 'status_class=~"4xx|5xx"' in by_title["Error ratio"]["targets"][0]["expr"]
    for title in ("PSI per feature", "PSI now"):
        steps = [s["value"] for s in by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]]
        assert steps == [None, 0.1, 0.25], title
    live = by_title["Live vs reference: $feature"]
    assert live["repeat"] == "feature"
    assert [re.findall(r"churnguard_\w+", t["expr"]) for t in live["targets"]] == [
        ["churnguard_feature_window_ratio"],
        ["churnguard_feature_reference_ratio"],
    ]
    assert all('feature="$feature"' in t["expr"] for t in live["targets"])
    for metric in (
        "churnguard_model_loaded",
        "churnguard_start_time_seconds",
        "churnguard_model_reloads_total",
        "churnguard_model_last_reload_timestamp_seconds",
        "churnguard_training_positive_rate",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "churnguard_quality_confusion_total",
        "churnguard_quality_score_bin_total",
        "churnguard_quality_score_bucket",
        "churnguard_quality_brier_total",
        "churnguard_feedback_outcomes_total",
        "churnguard_model_test_metric",
    ):
        assert metric in text, metric
    for source_name in ("Realized", "Estimated"):
        f1 = by_title[f"{source_name} F1 (time range)"]
        assert f'source="{source_name.lower()}"' in f1["targets"][0]["expr"]
        assert [s["value"] for s in f1["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 0.75]


def test_expand_substitutes_grafana_variables() -> None:
    expr = 'rate(x{v=~"$model_version"}[$__rate_interval]) + increase(y{f="${feature}"}[$__range])'
    assert source.expand(expr, GRAFANA_VALUES) == 'rate(x{v=~".*"}[1m]) + increase(y{f="age"}[1h])'


def test_generator_check_mode_agrees_with_the_committed_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert source.main(["--check"]) == 0
    assert "is up to date" in capsys.readouterr().out
