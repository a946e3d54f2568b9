"""The chart ships the project's own files byte for byte: UI files and nginx config (through the files/ui
symlink to ui/), the alert rules and the Grafana dashboard (files/ under the chart)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import helm_python
import pytest
import yaml

from tests.chart.render import (
    CHART_DIR,
    MONITORING_ON,
    REPO,
    dashboard_json,
    find_object,
    load_chart,
    nginx_config,
    prometheus_rule_spec,
    ui_files,
)

pytestmark = pytest.mark.unit

UI_DIR = REPO / "ui"
RULES = CHART_DIR / "files" / "rules" / "churnguard.rules.yaml"
DASHBOARD = CHART_DIR / "files" / "dashboards" / "churnguard.json"


def test_files_ui_is_a_relative_symlink_to_the_ui_folder() -> None:
    link = CHART_DIR / "files" / "ui"
    assert link.is_symlink()
    assert os.readlink(link) == "../../../ui"
    assert link.resolve() == UI_DIR.resolve()


def test_helm_loader_follows_the_symlink() -> None:
    names = {f["name"] for f in load_chart().files}
    assert "files/ui/nginx.conf" in names
    assert "files/ui/index.html" in names


def test_ui_configmap_carries_every_ui_file_byte_for_byte() -> None:
    on_disk = {
        p.relative_to(UI_DIR).as_posix(): p.read_bytes()
        for p in sorted(UI_DIR.rglob("*"))
        if p.is_file() and p.name != "nginx.conf" and not p.name.startswith(".")
    }
    shipped = ui_files()
    assert set(shipped) == set(on_disk)
    for path, content in on_disk.items():
        assert shipped[path] == content, path
    assert "index.html" in shipped
    # A ConfigMap holds at most 1 MiB (base64 makes binary files a third larger).
    assert (
        sum(len(c) * (1 if path.endswith((".html", ".css", ".js")) else 4 / 3) for path, c in on_disk.items()) < 900_000
    )


def test_nginx_config_is_ui_nginx_conf_byte_for_byte() -> None:
    assert nginx_config() == (UI_DIR / "nginx.conf").read_bytes()


def test_every_nginx_placeholder_is_substituted_at_start_and_nothing_else_is() -> None:
    placeholders = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", nginx_config().decode()))
    assert placeholders == {"PREDICTOR_UPSTREAM", "NGINX_RESOLVERS"}
    deployment = find_object("Deployment", "-ui")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["PREDICTOR_UPSTREAM"] == "http://churnguard-predictor.churnguard.svc:80"
    assert container["command"] == ["/bin/sh", "-c"]
    (script,) = container["args"]
    assert "export NGINX_RESOLVERS" in script and "/etc/resolv.conf" in script
    # envsubst with an explicit list: nginx's own $variables must survive.
    (names,) = re.findall(r"envsubst '([^']*)'", script)
    assert set(re.findall(r"\$\{(\w+)\}", names)) == placeholders
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    template = f"{mounts['templates']}/nginx.conf.template"
    rendered = f"{mounts['rendered']}/nginx.conf"
    assert f"< {template} > {rendered}" in script
    assert re.search(rf"exec nginx -e stderr -c {re.escape(rendered)} -g 'daemon off;'$", script.strip())
    listen = re.search(r"listen\s+(\d+)", nginx_config().decode())
    assert listen is not None and int(listen.group(1)) == container["ports"][0]["containerPort"]


def test_ui_probes_hit_locations_the_nginx_config_answers() -> None:
    (container,) = find_object("Deployment", "-ui")["spec"]["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert re.search(rf"location\s+=\s+{re.escape(path)}\s", nginx_config().decode()), path


def test_ui_pods_roll_when_ui_files_change() -> None:
    deployment = find_object("Deployment", "-ui")
    assert re.fullmatch(r"[0-9a-f]{64}", deployment["spec"]["template"]["metadata"]["annotations"]["checksum/ui"])


def test_prometheus_rule_spec_is_the_rules_file() -> None:
    assert prometheus_rule_spec() == yaml.safe_load(RULES.read_text())
    assert "groups" in prometheus_rule_spec()


def test_dashboard_configmap_is_the_dashboard_file_byte_for_byte() -> None:
    assert dashboard_json() == DASHBOARD.read_bytes()
    json.loads(dashboard_json())
    cm = find_object("ConfigMap", "-dashboard", MONITORING_ON)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_binary_ui_files_travel_as_binary_data(tmp_path: Path) -> None:
    """A PNG or icon added to ui/ later reaches the pod unchanged (binaryData, base64)."""
    chart = tmp_path / "churnguard"
    shutil.copytree(CHART_DIR, chart, symlinks=True)
    (chart / "files" / "ui").unlink()
    ui = chart / "files" / "ui"
    (ui / "img").mkdir(parents=True)
    png = bytes(range(256)) * 4
    (ui / "img" / "logo.png").write_bytes(png)
    (ui / "index.html").write_text("<!doctype html><title>x</title>\n")
    (ui / "nginx.conf").write_text("events {}\nhttp { server { listen 8080; location = /healthz { return 200; } } }\n")
    rendered = helm_python.Chart.load(str(chart)).render({}, name="churnguard", namespace="churnguard")
    docs = [d for d in yaml.safe_load_all(rendered["churnguard/templates/ui.yaml"]) if d]
    files_cm = next(d for d in docs if d["metadata"]["name"].endswith("-ui-files"))
    assert base64.b64decode(files_cm["binaryData"]["img__logo.png"]) == png
    assert files_cm["data"]["index.html"] == "<!doctype html><title>x</title>\n"
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    html = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "html")
    assert {"key": "img__logo.png", "path": "img/logo.png"} in html["configMap"]["items"]
