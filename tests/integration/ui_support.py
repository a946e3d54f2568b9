"""Helpers of the UI tests: render the shipped nginx.conf for loopback, run nginx, launch Debian Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.chart.render import nginx_config
from tests.support import ROOT, free_port, running

REPO = ROOT
UI_DIR = REPO / "ui"
NGINX_CONF = UI_DIR / "nginx.conf"
SCREENSHOTS = REPO / "test-output" / "ui"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]

# What a deployment chooses; everything else in the file is served as shipped.
ROOT_LINE = "root /usr/share/nginx/html;"
LISTEN_LINE = "listen 8080;"
UPSTREAM = "${PREDICTOR_UPSTREAM}"
RESOLVERS = "${NGINX_RESOLVERS}"


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    if count != 1:
        raise ValueError(f"expected {old!r} exactly once in nginx.conf, found it {count} times")
    return text.replace(old, new)


def render_nginx_conf(text: str, *, root: Path, listen: str, upstream: str) -> str:
    """The shipped config with only the static root, the listen address, the predictor URL and the resolver
    substituted (what the chart's start command does in a cluster, plus the root and port a test needs). The
    upstream here is an IP address, so the resolver is never asked."""
    text = _replace_once(text, ROOT_LINE, f"root {root};")
    text = _replace_once(text, LISTEN_LINE, f"listen {listen};")
    text = _replace_once(text, RESOLVERS, "127.0.0.1")
    return _replace_once(text, UPSTREAM, upstream)


@contextmanager
def running_nginx(workdir: Path, upstream: str) -> Iterator[str]:
    """nginx in the foreground on a free loopback port serving ui/ with the shipped config; yields its URL."""
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(
        # The bytes the Helm chart ships (its UI ConfigMap), not a local copy.
        render_nginx_conf(nginx_config().decode(), root=UI_DIR, listen=f"127.0.0.1:{port}", upstream=upstream)
    )
    (workdir / "logs").mkdir(exist_ok=True)  # nginx's compiled-in error log, used before the config is read
    url = f"http://127.0.0.1:{port}"
    cmd = [NGINX, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"]
    with running(cmd, log=workdir / "nginx.log", ready_url=f"{url}/healthz", timeout=20):
        yield url


def percent(probability: float) -> str:
    """The UI's probability format (ui/js/spec.js formatPercent)."""
    return f"{probability * 100:.1f}%"


def instance_of(preset: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """A preset's features as the form sends them: integers and category values as whole numbers."""
    out: dict[str, Any] = {}
    for f in info["spec"]["features"]:
        v = preset["features"].get(f["name"])
        if isinstance(v, float) and v.is_integer() and (f["type"] == "integer" or f["type"] == "category"):
            v = int(v)
        out[f["name"]] = v
    return out


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
