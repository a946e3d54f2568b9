"""Helpers and fixtures of the UI tests: render the shipped nginx.conf for loopback, run nginx, launch Debian
Chromium, record a page's requests and errors, screenshots, and axe-core from the npm registry.

The test modules load the fixtures with `pytest_plugins = ["tests.integration.ui_support"]`; they import helpers from
here first, hence PYTEST_DONT_REWRITE (no "already imported" warning; the asserts here are plain)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.chart.render import nginx_config
from tests.support import PYTHON, ROOT, free_port, running

REPO = ROOT
UI_DIR = REPO / "ui"
NGINX_CONF = UI_DIR / "nginx.conf"
SCREENSHOTS = REPO / "test-output" / "screenshots"  # the directory CI keeps
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


# --- Browser pages ---------------------------------------------------------------------------------------------

VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 360, "height": 800}}
VIEWS = ("predict", "batch", "model", "monitoring", "about")


class Page:
    """A Playwright page on the UI that records every request and every console error."""

    def __init__(self, page: Any, base: str, viewport: str = "desktop") -> None:
        self.page = page
        self.base = base
        self.viewport = viewport
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("console", self._console)

    def _console(self, msg: Any) -> None:
        # Chromium logs every 4xx/5xx fetch as an error; those are expected answers, not faults.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.errors.append(msg.text)

    def open(self, view: str = "predict") -> Any:
        self.page.goto(f"{self.base}/#{view}")
        self.page.wait_for_selector("#fields .field", state="attached")
        self.page.wait_for_selector("#status[data-state='ready']")
        return self.page

    def predict_preset(self, i: int) -> None:
        """Fill the form from preset `i`, submit, and wait for the verdict and its explanation."""
        self.page.click(f"[data-preset='{i}']")
        self.page.click("#predict-submit")
        self.page.wait_for_selector("#result[data-state='done']")
        self.page.wait_for_selector("#drivers-list li[data-feature]")

    def show(self, view: str) -> None:
        self.page.click(f".tab[data-view='{view}']")
        self.page.wait_for_selector(f"#view-{view}:not([hidden])")

    def shot(self, name: str, *, full_page: bool = True) -> Path:
        return screenshot(self.page, name, full_page=full_page)

    def predict_requests(self, since: int = 0) -> list[str]:
        return [u for u in self.requests[since:] if u.endswith(":predict")]


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot into test-output/screenshots (kept by CI) from the top of the page, and print its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if full_page:
        page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar at the top, where it belongs
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path


@pytest.fixture(scope="session")
def ui_url(predictor_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not os.access(NGINX, os.X_OK):
        pytest.skip(f"nginx not installed at {NGINX} (sudo make system-deps)")
    with running_nginx(tmp_path_factory.mktemp("nginx"), upstream=predictor_url) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"chromium not installed at {CHROMIUM} (sudo make system-deps)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@contextmanager
def page_at(browser: Any, url: str, viewport: str = "desktop", *, bypass_csp: bool = False) -> Iterator[Page]:
    """A fresh browser context at one of VIEWPORTS; fails the test on any console error of the page.
    `bypass_csp` only for injecting axe-core (add_script_tag writes an inline script the page's CSP refuses)."""
    context = browser.new_context(viewport=VIEWPORTS[viewport], accept_downloads=True, bypass_csp=bypass_csp)
    page = Page(context.new_page(), url, viewport)
    try:
        yield page
    finally:
        context.close()
    assert page.errors == [], "console errors (CSP violations, script errors) on the page"


@pytest.fixture
def ui(browser: Any, ui_url: str) -> Iterator[Page]:
    with page_at(browser, ui_url, "desktop") as page:
        yield page


@pytest.fixture(params=list(VIEWPORTS))
def any_ui(request: pytest.FixtureRequest, browser: Any, ui_url: str) -> Iterator[Page]:
    """The UI at 1440×900 and at 360×800."""
    with page_at(browser, ui_url, request.param) as page:
        yield page


@pytest.fixture
def phone(browser: Any, ui_url: str) -> Iterator[Page]:
    with page_at(browser, ui_url, "phone") as page:
        yield page


@contextmanager
def running_predictor(champion: dict[str, Any], port: int, log: Path, **env: str) -> Iterator[str]:
    """Another predictor process serving the champion on `port` (stopped on exit); yields its URL."""
    url = f"http://127.0.0.1:{port}"
    full_env = {
        "MLFLOW_TRACKING_URI": champion["tracking_uri"],
        "CHURN_MODEL_URI": f"models:/churnguard/{champion['version']}",
        "CHURN_TRACING": "false",
        **env,
    }
    cmd = [PYTHON, "-m", "predictor", "--http_port", str(port)]
    with running(cmd, env=full_env, log=log, ready_url=f"{url}/v2/health/ready", timeout=120):
        yield url


def api_predict(ui_url: str, name: str, instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = requests.post(f"{ui_url}/v1/models/{name}:predict", json={"instances": instances}, timeout=30)
    r.raise_for_status()
    predictions: list[dict[str, Any]] = r.json()["predictions"]
    return predictions


# --- axe-core ----------------------------------------------------------------------------------------------------

AXE_VERSION = "4.10.3"
# The registry's integrity of axe-core-4.10.3.tgz: the tarball npm hands over must be these bytes.
AXE_INTEGRITY = "sha512-Xm7bpRXnDSX2YE2YFfBk2FnF0ep6tmG7xPh8iHee8MIcrgq762Nkce856dYtJYLkuIoYZvGfTs/PbZhideTcEg=="
AXE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "churnguard" / f"axe-core-{AXE_VERSION}"


def axe_script() -> Path:
    """axe.min.js of the pinned axe-core, fetched once with `npm pack` from the npm registry and cached."""
    target = AXE_CACHE / "axe.min.js"
    if target.exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm not installed: the accessibility scan needs it to fetch axe-core (sudo make system-deps)")
    AXE_CACHE.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [npm, "pack", f"axe-core@{AXE_VERSION}", "--pack-destination", str(AXE_CACHE), "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"npm pack axe-core@{AXE_VERSION} failed:\n{result.stderr[-2000:]}")
    tgz = AXE_CACHE / json.loads(result.stdout)[0]["filename"]
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
    assert digest == AXE_INTEGRITY, f"{tgz.name} is not the pinned axe-core {AXE_VERSION}"
    with tarfile.open(tgz) as tar:
        member = tar.extractfile("package/axe.min.js")
        assert member is not None
        tmp = target.with_suffix(".part")
        tmp.write_bytes(member.read())
    tmp.replace(target)
    return target


def run_axe(page: Any, script: Path) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (WCAG 2.x A/AA and best practices)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(script))
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))}))"""
    )
    return violations
