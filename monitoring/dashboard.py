"""The ChurnGuard Grafana dashboard, as code: `python -m monitoring.dashboard` writes the chart's JSON file.

This module is the dashboard's one source; `charts/churnguard/files/dashboards/churnguard.json` is its output
(tests/unit/test_dashboard.py fails when the two differ; `--check` does the same from the command line).
Every query uses `$__rate_interval` or `$__range` as its window, so it works with a 1 s scrape interval in the
tests and 30 s in a cluster; `expand()` substitutes concrete values for running the queries elsewhere.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parents[1] / "charts" / "churnguard" / "files" / "dashboards" / "churnguard.json"
UID = "churnguard"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# API requests: everything clients send. Health probes (kubelet) and /metrics (Prometheus) are not traffic.
API = 'route!~"/v2/health/.*|/metrics"'
MV = 'model_version=~"$model_version"'
# A ChurnGuard predictor target: generic series (process_*, KServe's request_*) are kept only for targets
# that also export ChurnGuard metrics, whatever the job is called.
PREDICTOR_TARGET = "and on (job, instance) churnguard_start_time_seconds"
PSI_WARN, PSI_ALERT = 0.1, 0.25

Json = dict[str, Any]


def target(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "time_series") -> Json:
    return {"expr": expr, "legendFormat": legend, "instant": instant, "range": not instant, "format": fmt}


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


OK = thresholds((None, "green"))
PSI_STEPS = thresholds((None, "green"), (PSI_WARN, "orange"), (PSI_ALERT, "red"))


class Layout:
    """Hands out panel ids and grid positions: rows of panels, left to right, wrapping at 24 columns."""

    def __init__(self) -> None:
        self.panels: list[Json] = []
        self.next_id = 1
        self.x = self.y = self.row_height = 0

    def row(self, title: str) -> None:
        self.y += self.row_height
        self.x = self.row_height = 0
        self._add({"type": "row", "title": title, "collapsed": False, "panels": []}, 24, 1)

    def add(self, panel: Json, w: int, h: int) -> None:
        if self.x + w > 24:
            self.y += self.row_height
            self.x = self.row_height = 0
        self._add(panel, w, h)

    def _add(self, panel: Json, w: int, h: int) -> None:
        panel = {"id": self.next_id, "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h}, **panel}
        self.next_id += 1
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)
        if self.x >= 24:
            self.y += self.row_height
            self.x = self.row_height = 0


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[Json],
    *,
    unit: str,
    steps: Json = OK,
    defaults: Json | None = None,
    options: Json | None = None,
    **extra: Any,
) -> Json:
    refs = "ABCDEFGH"
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [{"refId": refs[i], "datasource": DATASOURCE, **t} for i, t in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": steps, **(defaults or {})}, "overrides": []},
        "options": options or {},
        **extra,
    }


def stat(title: str, description: str, targets: list[Json], *, unit: str, **kw: Any) -> Json:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "area",
        "textMode": "auto",
        **kw.pop("options", {}),
    }
    return panel("stat", title, description, targets, unit=unit, options=options, **kw)


def timeseries(title: str, description: str, targets: list[Json], *, unit: str, **kw: Any) -> Json:
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": True}
    defaults = {"custom": {**custom, **kw.pop("custom", {})}, **kw.pop("defaults", {})}
    options = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    return panel("timeseries", title, description, targets, unit=unit, defaults=defaults, options=options, **kw)


def heatmap(title: str, description: str, buckets: str, *, scheme: str, y_axis: Json | None = None) -> Json:
    """Rows per bucket of a Prometheus histogram over time (`buckets`: its _bucket series with any selector)."""
    return panel(
        "heatmap",
        title,
        description,
        [target(f"sum by (le) (increase({buckets}[$__rate_interval]))", "{{le}}", fmt="heatmap")],
        unit="short",
        options={
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": scheme, "steps": 64},
            "yAxis": {"axisPlacement": "left", **(y_axis or {})},
            "rowsFrame": {"layout": "le"},
            "tooltip": {"show": True, "yHistogram": True},
        },
    )


def rate(metric: str, selector: str = "", by: str = "") -> str:
    """Per-second rate of a counter, summed (by `by`)."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{selector}}}[$__rate_interval]))"


def quantile(q: float, histogram: str, selector: str = "", by: str = "") -> str:
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({histogram}_bucket{{{selector}}}[$__rate_interval])))"


def quality_f1(source: str) -> str:
    """F1 = 2 tp / (2 tp + fp + fn) over the time range, per version, all replicas summed (contract/quality.py)."""

    def cells(c: str) -> str:
        return (
            f"sum by (model_version) (increase(churnguard_quality_confusion_total"
            f'{{source="{source}", cell=~"{c}", {MV}}}[$__range]))'
        )

    return f"2 * {cells('tp')}\n/\n({cells('tp')} + {cells('tp|fp|fn')})"


def quality_roc_auc(source: str) -> str:
    """Binned ROC AUC over the time range, as the alert ChurnGuardRealizedRocAucBelowGate computes it: the sum over
    bins of pos_b (cumNeg_b - neg_b / 2), over P N; the per-bin counter and the histogram share `le`."""
    by = "model_version, le"

    def inc(metric: str, actual: str, le: str = "") -> str:
        return f'sum by ({by}) (increase({metric}{{source="{source}", actual="{actual}"{le}, {MV}}}[$__range]))'

    cum_neg = inc("churnguard_quality_score_bucket", "0", ', le!="+Inf"')
    neg = inc("churnguard_quality_score_bin_total", "0")
    pos = inc("churnguard_quality_score_bin_total", "1")
    total = (
        f"sum by (model_version) (increase(churnguard_quality_score_bucket"
        f'{{source="{source}", actual="{{a}}", le="+Inf", {MV}}}[$__range]))'
    )
    return (
        f"sum by (model_version) (\n  {pos}\n  * on ({by})\n  (({cum_neg} - on ({by}) {neg} / 2) or {cum_neg})\n)\n"
        f"/\n({total.replace('{a}', '1')}\n * on (model_version)\n {total.replace('{a}', '0')})"
    )


def build() -> Json:
    lay = Layout()
    churn_ratio = (
        f'sum(rate(churnguard_predictions_total{{outcome="churn", {MV}}}[$__rate_interval]))\n/\n'
        f"sum(rate(churnguard_predictions_total{{{MV}}}[$__rate_interval]))"
    )

    lay.row("Status")
    lay.add(
        stat(
            "Ready",
            "1 when every predictor replica has a model loaded (readiness); 0 means at least one serves none.",
            [target("min(churnguard_model_loaded)", instant=True)],
            unit="none",
            steps=thresholds((None, "red"), (1, "green")),
            defaults={
                "mappings": [
                    {"type": "value", "options": {"0": {"text": "Not ready", "color": "red"}}},
                    {"type": "value", "options": {"1": {"text": "Ready", "color": "green"}}},
                ]
            },
            options={"graphMode": "none", "colorMode": "background"},
        ),
        3,
        4,
    )
    lay.add(
        stat(
            "Served model version",
            "Registry version of the champion the predictor serves (label model_version of churnguard_model_info).",
            [target("max by (model_name, model_version) (churnguard_model_info == 1)", instant=True, fmt="table")],
            unit="string",
            options={
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "/^model_version$/", "values": False},
                "graphMode": "none",
                "colorMode": "none",
            },
        ),
        4,
        4,
    )
    lay.add(
        stat(
            "Uptime",
            "Time since the youngest predictor process started.",
            [target("min(time() - churnguard_start_time_seconds)")],
            unit="s",
            options={"graphMode": "none"},
        ),
        3,
        4,
    )
    lay.add(
        stat(
            "Request rate",
            "API requests per second (health probes and /metrics excluded).",
            [target(rate("churnguard_http_requests_total", API))],
            unit="reqps",
        ),
        4,
        4,
    )
    lay.add(
        stat(
            "Error ratio",
            "Share of API requests answered 4xx (client errors: invalid input) and 5xx (server errors).",
            [
                target(
                    f'sum by (status_class) (rate(churnguard_http_requests_total{{{API}, status_class=~"4xx|5xx"}}'
                    f"[$__rate_interval]))\n/ ignoring (status_class) group_left\n"
                    f"sum(rate(churnguard_http_requests_total{{{API}}}[$__rate_interval]))",
                    "{{status_class}}",
                )
            ],
            unit="percentunit",
            steps=thresholds((None, "green"), (0.05, "orange"), (0.2, "red")),
            defaults={"noValue": "0"},
        ),
        4,
        4,
    )
    lay.add(
        stat(
            "Churn rate (time range)",
            "Share of rows scored over the dashboard's time range that the model predicts to churn.",
            [
                target(
                    f'sum(increase(churnguard_predictions_total{{outcome="churn", {MV}}}[$__range]))\n/\n'
                    f"sum(increase(churnguard_predictions_total{{{MV}}}[$__range]))",
                    instant=True,
                )
            ],
            unit="percentunit",
            options={"graphMode": "none"},
        ),
        3,
        4,
    )
    lay.add(
        stat(
            "Training base rate",
            "Share of training rows the served model predicts to churn: what the churn rate should be near.",
            [target("max(churnguard_training_positive_rate)", instant=True)],
            unit="percentunit",
            options={"graphMode": "none", "colorMode": "none"},
        ),
        3,
        4,
    )

    lay.row("Traffic")
    lay.add(
        timeseries(
            "Requests by route",
            "Requests per second by route template, all routes (probes and /metrics included).",
            [target(rate("churnguard_http_requests_total", by="route"), "{{route}}")],
            unit="reqps",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "API requests by status class",
            "API requests per second by status class (2xx ok, 4xx rejected input, 5xx server error).",
            [target(rate("churnguard_http_requests_total", API, by="status_class"), "{{status_class}}")],
            unit="reqps",
            custom={"stacking": {"mode": "normal", "group": "A"}},
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Rejected requests by reason",
            "Requests refused per second by reason (validation, malformed, too_large, internal, ...).",
            [target(rate("churnguard_prediction_errors_total", by="reason"), "{{reason}}")],
            unit="reqps",
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Scored rows by outcome",
            "Rows scored per second by predicted outcome.",
            [target(rate("churnguard_predictions_total", MV, by="outcome"), "{{outcome}}")],
            unit="short",
            custom={"stacking": {"mode": "normal", "group": "A"}},
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Rows per request",
            "Median and 95th percentile of rows per scoring request (batch size).",
            [
                target(quantile(0.5, "churnguard_request_rows"), "p50"),
                target(quantile(0.95, "churnguard_request_rows"), "p95"),
            ],
            unit="short",
        ),
        8,
        8,
    )

    lay.row("Latency")
    lay.add(
        timeseries(
            "Inference latency",
            "Time in the model call per request (decoding excluded): p50, p95, p99.",
            [target(quantile(q, "churnguard_inference_seconds", MV), f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)],
            unit="s",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "KServe predict handler (mean)",
            "Mean time in KServe's predict handler (request_predict_seconds), per model.",
            [
                target(
                    f"sum by (model_name) (rate(request_predict_seconds_sum[$__rate_interval]) {PREDICTOR_TARGET})\n/\n"
                    f"sum by (model_name) (rate(request_predict_seconds_count[$__rate_interval]) {PREDICTOR_TARGET})",
                    "{{model_name}}",
                )
            ],
            unit="s",
        ),
        12,
        8,
    )
    for q in (0.5, 0.95, 0.99):
        name = f"p{round(q * 100)}"
        lay.add(
            timeseries(
                f"HTTP latency {name} by route",
                f"{name} of the HTTP request duration (middleware to last byte) by route template.",
                [target(quantile(q, "churnguard_http_request_duration_seconds", by="route"), "{{route}}")],
                unit="s",
            ),
            8,
            8,
        )

    lay.row("Predictions")
    lay.add(
        timeseries(
            "Predicted churn rate",
            "Share of scored rows predicted to churn, against the served model's training base rate.",
            [
                target(churn_ratio, "churn rate"),
                target("max(churnguard_training_positive_rate)", "training base rate"),
            ],
            unit="percentunit",
        ),
        8,
        8,
    )
    lay.add(
        heatmap(
            "Churn probability distribution",
            "Scored rows per churn-probability bucket (width 0.05) over time.",
            f"churnguard_churn_probability_bucket{{{MV}}}",
            scheme="Oranges",
            y_axis={"unit": "percentunit"},
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Average churn probability",
            "Mean churn probability of the rows scored.",
            [
                target(
                    f"sum(rate(churnguard_churn_probability_sum{{{MV}}}[$__rate_interval]))\n/\n"
                    f"sum(rate(churnguard_churn_probability_count{{{MV}}}[$__rate_interval]))",
                    "mean probability",
                )
            ],
            unit="percentunit",
        ),
        8,
        8,
    )

    lay.row("Data drift")
    psi = "max by (feature) (churnguard_feature_psi)"
    lay.add(
        timeseries(
            "PSI per feature",
            f"Population stability index of each feature over the predictor's recent window against the training "
            f"reference. Below {PSI_WARN}: stable; {PSI_WARN}-{PSI_ALERT}: moderate shift; above {PSI_ALERT}: "
            f"major shift (alert ChurnGuardFeatureDrift after 15 min). Appears once the window holds 50 rows.",
            [target(psi, "{{feature}}")],
            unit="none",
            steps=PSI_STEPS,
            custom={"thresholdsStyle": {"mode": "line+area"}},
        ),
        12,
        8,
    )
    lay.add(
        panel(
            "bargauge",
            "PSI now",
            f"Latest PSI per feature; orange from {PSI_WARN}, red from {PSI_ALERT}.",
            [target(psi, "{{feature}}", instant=True)],
            unit="none",
            steps=PSI_STEPS,
            defaults={"min": 0, "max": 1, "decimals": 3},
            options={
                "orientation": "horizontal",
                "displayMode": "gradient",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            },
        ),
        8,
        8,
    )
    lay.add(
        stat(
            "Drift window rows",
            "Rows in the drift window (CHURN_DRIFT_WINDOW caps it); PSI needs at least 50.",
            [target("max(churnguard_drift_window_rows)")],
            unit="short",
        ),
        4,
        8,
    )
    lay.add(
        panel(
            "barchart",
            "Live vs reference: $feature",
            "Share of the recent window's rows (live) and of the training rows (reference) in each reference bin. "
            "Bins are numbered in order; numeric bins are named by their upper edge, categories by their label.",
            [
                target(
                    'avg by (bin) (churnguard_feature_window_ratio{feature="$feature"})',
                    "live",
                    instant=True,
                    fmt="table",
                ),
                target(
                    'max by (bin) (churnguard_feature_reference_ratio{feature="$feature"})',
                    "reference",
                    instant=True,
                    fmt="table",
                ),
            ],
            unit="percentunit",
            options={"xField": "bin", "orientation": "vertical", "groupWidth": 0.8, "barWidth": 0.9},
            transformations=[
                {"id": "joinByField", "options": {"byField": "bin", "mode": "outer"}},
                {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "bin", "desc": False}]}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "Time 1": True, "Time 2": True},
                        "renameByName": {"Value #A": "live", "Value #B": "reference"},
                    },
                },
            ],
            repeat="feature",
            repeatDirection="h",
            maxPerRow=3,
        ),
        8,
        8,
    )
    # One panel per feature at run time: Grafana repeats the panel above for every value of $feature.
    lay.row("Live quality")
    for source_name, what in (
        ("realized", "from the labelled outcomes sent back (POST /v1/models/<name>/feedback)"),
        ("estimated", "expected from the served probabilities, before any label (right while calibration holds)"),
    ):
        lay.add(
            stat(
                f"{source_name.capitalize()} F1 (time range)",
                f"F1 of each version over the dashboard's time range, {what}; all replicas summed. Training's gate "
                "requires 0.75 (alert ChurnGuardRealizedF1BelowGate; docs/quality.md).",
                [target(quality_f1(source_name), "version {{model_version}}", instant=True)],
                unit="percentunit",
                steps=thresholds((None, "red"), (0.75, "green")),
                defaults={"decimals": 3},
            ),
            5,
            8,
        )
    lay.add(
        stat(
            "Realized ROC AUC (time range)",
            "Binned ROC AUC (50 probability bins) of each version over the time range, from labelled outcomes; "
            "training's gate requires 0.90 (alert ChurnGuardRealizedRocAucBelowGate).",
            [target(quality_roc_auc("realized"), "version {{model_version}}", instant=True)],
            unit="percentunit",
            steps=thresholds((None, "red"), (0.9, "green")),
            defaults={"decimals": 3},
        ),
        5,
        8,
    )
    lay.add(
        stat(
            "Test F1 and ROC AUC",
            "The served version's metrics on its held-out test split, what the live figures are held against.",
            [
                target(
                    f'max by (model_version, metric) (churnguard_model_test_metric{{metric=~"f1|roc_auc", {MV}}})',
                    "{{metric}} (version {{model_version}})",
                    instant=True,
                )
            ],
            unit="percentunit",
            defaults={"decimals": 3},
        ),
        5,
        8,
    )
    lay.add(
        stat(
            "Labelled outcomes (time range)",
            "Outcomes counted per version over the time range; the quality alerts wait for 200.",
            [
                target(
                    f'sum by (model_version) (increase(churnguard_quality_rows_total{{source="realized", {MV}}}'
                    "[$__range]))",
                    "version {{model_version}}",
                    instant=True,
                )
            ],
            unit="short",
            defaults={"decimals": 0},
        ),
        4,
        8,
    )
    lay.add(
        timeseries(
            "Feedback outcomes by result",
            "Outcomes sent to the feedback route per second: accepted, replayed (409: counted before) and rejected "
            "(422: forged, unknown, expired id or a bad label).",
            [target(rate("churnguard_feedback_outcomes_total", by="result"), "{{result}}")],
            unit="short",
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Brier score, realized and estimated",
            "Mean (p - y)^2 per version and source, over the rate interval: realized from outcomes, estimated from "
            "the probabilities (p (1 - p)). Realized above estimated means the model is less calibrated than it "
            "believes.",
            [
                target(
                    f"sum by (model_version, source) (rate(churnguard_quality_brier_total{{{MV}}}[$__rate_interval]))"
                    "\n/\n"
                    f"sum by (model_version, source) (rate(churnguard_quality_rows_total{{{MV}}}[$__rate_interval]))",
                    "{{source}} (version {{model_version}})",
                )
            ],
            unit="short",
        ),
        12,
        8,
    )

    lay.row("Challenger in shadow")
    pair = "champion_version, challenger_version"
    lay.add(
        stat(
            "Shadow agreement (time range)",
            "Share of the shadowed rows on which the challenger's verdict (at its threshold) is the champion's (at "
            "its own), per pair of versions over the time range; all replicas summed. The `challenger` registry alias "
            "names the challenger; CHURN_SHADOW_SAMPLE_RATIO of the requests are shadowed.",
            [
                target(
                    f'sum by ({pair}) (increase(churnguard_shadow_agreement_total{{verdict="same"}}[$__range]))\n/\n'
                    f"sum by ({pair}) (increase(churnguard_shadow_agreement_total[$__range]))",
                    "{{challenger_version}} vs {{champion_version}}",
                    instant=True,
                )
            ],
            unit="percentunit",
            defaults={"decimals": 3},
        ),
        6,
        8,
    )
    lay.add(
        stat(
            "F1 of the challenger and the champion (time range)",
            "Realized and estimated F1 of the challenger and of the served version, side by side. The challenger's "
            "realized F1 counts the labelled rows it shadowed, a sample of the champion's.",
            [
                target(
                    f"({quality_f1(source_name)})\nand on (model_version)\n"
                    "(churnguard_challenger_info == 1 or churnguard_model_info == 1)",
                    f"{source_name} (version {{{{model_version}}}})",
                    instant=True,
                )
                for source_name in ("realized", "estimated")
            ],
            unit="percentunit",
            steps=thresholds((None, "red"), (0.75, "green")),
            defaults={"decimals": 3},
        ),
        6,
        8,
    )
    lay.add(
        timeseries(
            "Shadowed rows by result",
            "Rows offered to the challenger per second: scored, dropped (its queue was full: the champion's answers "
            "never wait for it) and incompatible (the challenger has other features).",
            [target(rate("churnguard_shadow_rows_total", by="challenger_version, result"), "{{result}}")],
            unit="short",
        ),
        6,
        8,
    )
    lay.add(
        heatmap(
            "Score difference, challenger minus champion",
            "Shadowed rows per bucket of the challenger's churn probability minus the champion's, over time.",
            "churnguard_shadow_score_difference_bucket",
            scheme="Purples",
        ),
        6,
        8,
    )

    lay.row("Model lifecycle")
    lay.add(
        timeseries(
            "Model loads by result",
            "Model (re)loads per interval: success (a new version swapped in) and failure (a version rejected).",
            [target("sum by (result) (increase(churnguard_model_reloads_total[$__rate_interval]))", "{{result}}")],
            unit="short",
            custom={"drawStyle": "bars", "fillOpacity": 80},
        ),
        8,
        8,
    )
    lay.add(
        stat(
            "Failed loads (since start)",
            "Model versions the running predictors rejected since they started (alert ChurnGuardModelReloadFailed).",
            [target('sum(churnguard_model_reloads_total{result="failure"}) or vector(0)')],
            unit="short",
            steps=thresholds((None, "green"), (1, "red")),
        ),
        4,
        8,
    )
    lay.add(
        stat(
            "Time since last model load",
            "Time since the served model was loaded (latest replica).",
            [target("time() - max(churnguard_model_last_reload_timestamp_seconds)")],
            unit="s",
            options={"graphMode": "none"},
        ),
        4,
        8,
    )
    lay.add(
        timeseries(
            "Replicas by served version",
            "Predictor replicas serving each model version (a rollout shows two versions).",
            [target(f"count by (model_version) (churnguard_model_info{{{MV}}} == 1)", "version {{model_version}}")],
            unit="short",
        ),
        8,
        8,
    )

    lay.row("Process")
    lay.add(
        timeseries(
            "CPU",
            "CPU time per second of each predictor process (1 = one core).",
            [target(f"rate(process_cpu_seconds_total[$__rate_interval]) {PREDICTOR_TARGET}", "{{instance}}")],
            unit="percentunit",
        ),
        6,
        8,
    )
    lay.add(
        timeseries(
            "Resident memory",
            "Resident set size of each predictor process.",
            [target(f"process_resident_memory_bytes {PREDICTOR_TARGET}", "{{instance}}")],
            unit="bytes",
        ),
        6,
        8,
    )
    lay.add(
        timeseries(
            "Open file descriptors",
            "Open file descriptors of each predictor process, against its limit.",
            [
                target(f"process_open_fds {PREDICTOR_TARGET}", "open {{instance}}"),
                target(f"process_max_fds {PREDICTOR_TARGET}", "limit {{instance}}"),
            ],
            unit="short",
        ),
        6,
        8,
    )
    lay.add(
        timeseries(
            "Dropped traces",
            "Sampled prediction traces not exported to MLflow per interval, by reason: queue_full (the tracer's queue),"
            " paused (MLflow failed a moment ago), export_failed (MLflow's exporter could not send it).",
            [target("sum by (reason) (increase(churnguard_traces_dropped_total[$__rate_interval]))", "{{reason}}")],
            unit="short",
        ),
        6,
        8,
    )

    return {
        "uid": UID,
        "title": "ChurnGuard",
        "description": "Churn-prediction service: availability, traffic, latency, predictions, data drift, "
        "model lifecycle and process health. Source: monitoring/dashboard.py.",
        "tags": ["churnguard", "mlops", "kserve"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables()},
        "annotations": {"list": []},
        "links": [],
        "panels": lay.panels,
    }


def variables() -> list[Json]:
    def query_var(name: str, label: str, query: str) -> Json:
        return {
            "type": "query",
            "name": name,
            "label": label,
            "datasource": DATASOURCE,
            "definition": query,
            "query": {"query": query, "refId": f"{name}-variable"},
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 3,
            "hide": 0,
            "options": [],
            "regex": "",
        }

    return [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "regex": "",
            "options": [],
        },
        query_var("model_version", "Model version", "label_values(churnguard_model_info, model_version)"),
        query_var("feature", "Feature", "label_values(churnguard_feature_reference_ratio, feature)"),
    ]


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


# -- helpers for running the dashboard's queries outside Grafana --------------------------------------------
def panels(dashboard: Json) -> Iterator[Json]:
    """Every panel that shows data (rows are layout, not panels), including panels nested in collapsed rows."""
    for p in dashboard["panels"]:
        if p["type"] == "row":
            yield from p.get("panels", [])
        else:
            yield p


def expand(expr: str, values: dict[str, str]) -> str:
    """Substitute Grafana variables (`$name` or `${name}`) given in `values`; others are left as they are."""

    def value(m: re.Match[str]) -> str:
        return values.get(m.group(1) or m.group(2), m.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the chart's JSON differs from this source")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write the JSON (default: the chart)")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python -m monitoring.dashboard", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output} ({sum(1 for _ in panels(build()))} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
