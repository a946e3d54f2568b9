"""The alert rules as the chart renders them: promtool accepts them, its unit tests make every alert fire on a bad
series and stay silent on a healthy one, every alert is documented, and the local Prometheus config loads them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from monitoring import prometheus
from tests.chart.render import MONITORING_ON, prometheus_rule_spec, render_chart
from tests.support import ROOT

RULES_TEST = ROOT / "monitoring" / "rules_test.yaml"
RUNBOOK = ROOT / "README.md"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")

EXPECTED_ALERTS = {
    "ChurnGuardPredictorDown",
    "ChurnGuardPredictorNotReady",
    "ChurnGuardNoModelLoaded",
    "ChurnGuardHighServerErrorRatio",
    "ChurnGuardHighClientErrorRatio",
    "ChurnGuardHighLatency",
    "ChurnGuardModelReloadFailed",
    "ChurnGuardFeatureDrift",
    "ChurnGuardChurnRateShift",
    "ChurnGuardRealizedF1BelowGate",
    "ChurnGuardRealizedRocAucBelowGate",
}


@pytest.fixture(scope="module")
def rendered_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PrometheusRule's spec from the rendered chart, as a rule file."""
    path = tmp_path_factory.mktemp("rules") / "churnguard.rules.yaml"
    path.write_text(yaml.safe_dump(prometheus_rule_spec(), sort_keys=False))
    return path


def alerts() -> list[dict[str, Any]]:
    return [r for g in prometheus_rule_spec()["groups"] for r in g["rules"] if "alert" in r]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


def test_the_chart_ships_every_alert_the_runbook_promises() -> None:
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    assert set(names) == EXPECTED_ALERTS


@needs_promtool
def test_promtool_accepts_the_rendered_rules(rendered_rules: Path) -> None:
    result = promtool("check", "rules", str(rendered_rules))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_pass_on_the_rendered_rules(rendered_rules: Path, tmp_path: Path) -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())
    tests["rule_files"] = [str(rendered_rules)]
    test_file = tmp_path / "rules_test.yaml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_silent_promtool_case() -> None:
    cases = [case for test in yaml.safe_load(RULES_TEST.read_text())["tests"] for case in test["alert_rule_test"]]
    for name in EXPECTED_ALERTS:
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c.get("exp_alerts") for c in mine), f"{name} never fires in rules_test.yaml"
        assert any(not c.get("exp_alerts") for c in mine), f"{name} is never checked silent in rules_test.yaml"


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        assert annotations["runbook_url"] == f"README.md#runbook-{name.lower()}"


def test_every_runbook_link_has_its_section_with_meaning_checks_and_actions() -> None:
    text = RUNBOOK.read_text()
    sections = text.split("\n### Runbook: ")[1:]
    by_name = {s.split("\n", 1)[0].strip(): s for s in sections}
    assert set(by_name) == EXPECTED_ALERTS
    for name, body in by_name.items():
        for part in ("**What it means.**", "**How to check.**", "**What to do.**"):
            assert part in body, f"runbook of {name} lacks {part}"


def test_the_quality_alerts_hold_the_served_version_to_trainings_gate() -> None:
    """The thresholds are the gate's defaults and the row floor the predictor's, so that changing one without the
    other fails here."""
    from predictor.settings import PredictorSettings
    from training.settings import TrainSettings

    train = TrainSettings.model_fields
    floor = PredictorSettings.model_fields["quality_min_rows"].default
    gates = {
        "ChurnGuardRealizedF1BelowGate": train["gate_min_f1"].default,
        "ChurnGuardRealizedRocAucBelowGate": train["gate_min_roc_auc"].default,
    }
    by_name = {a["alert"]: a for a in alerts()}
    for name, gate in gates.items():
        expr = by_name[name]["expr"]
        threshold = re.search(r"\)\s*<\s*([0-9.]+)\s*\n\s*and on", expr)
        assert threshold is not None and float(threshold.group(1)) == gate, (name, gate)
        assert f"[7d])) >= {floor}" in expr, (name, floor)
        assert "churnguard_model_info == 1" in expr, name
        assert f"gate of {gate:.2f}" in by_name[name]["annotations"]["summary"], name


def test_every_rule_expression_parses_as_promql() -> None:
    for rule in alerts():
        promql_parser.parse(rule["expr"])


def test_only_the_target_rules_name_a_job_and_it_is_this_releases() -> None:
    """`up` and `absent` would otherwise match other teams' predictors and other releases; the rest select
    ChurnGuard's own metric names."""
    scoped = {"ChurnGuardPredictorDown", "ChurnGuardNoModelLoaded"}
    for rule in alerts():
        jobs = set(re.findall(r'job="([^"]*)"', rule["expr"]))
        assert "job=~" not in rule["expr"], rule["alert"]
        assert jobs == ({"churnguard/churnguard-predictor"} if rule["alert"] in scoped else set()), rule["alert"]
    values = {"fullnameOverride": "scoring", **MONITORING_ON}
    rendered = render_chart(values, namespace="ml")
    (rule_obj,) = [o for o in rendered if o["kind"] == "PrometheusRule"]
    (monitor,) = [o for o in rendered if o["kind"] == "PodMonitor"]
    exprs = [r["expr"] for g in rule_obj["spec"]["groups"] for r in g["rules"] if "alert" in r]
    # prometheus-operator names a PodMonitor's job <namespace>/<name>.
    assert f'job="ml/{monitor["metadata"]["name"]}"' in "".join(exprs)
    assert "churnguard/churnguard-predictor" not in "".join(exprs)


@needs_promtool
def test_local_prometheus_config_is_valid_and_loads_the_rules(rendered_rules: Path, tmp_path: Path) -> None:
    text = prometheus.config("127.0.0.1:8080", rendered_rules, "1s")
    config = yaml.safe_load(text)
    assert config["rule_files"] == [str(rendered_rules.resolve())]
    assert config["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:8080"]}]
    assert config["global"]["scrape_interval"] == "1s"
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_local_prometheus_launcher_skips_cleanly_without_prometheus(capsys: pytest.CaptureFixture[str]) -> None:
    """`make up` must still work on machines without the Debian package."""
    assert prometheus.main(["--prometheus", ""]) == 0
    assert "prometheus is not installed" in capsys.readouterr().out
