"""Static rules of the UI files: a self-contained page under a strict CSP, and a deployable nginx.conf."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.integration.ui_support import (
    LISTEN_LINE,
    NGINX_CONF,
    RESOLVERS,
    ROOT_LINE,
    UI_DIR,
    UPSTREAM,
    render_nginx_conf,
)

pytestmark = pytest.mark.unit

CONF = NGINX_CONF.read_text()
WEB_FILES = sorted(p for p in UI_DIR.rglob("*") if p.suffix in {".html", ".js", ".css", ".svg"})
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data


def _index() -> _Tags:
    parser = _Tags()
    parser.feed((UI_DIR / "index.html").read_text())
    return parser


def test_index_has_no_inline_script_style_or_handler() -> None:
    page = _index()
    assert page.script_text.strip() == ""
    assert all(attrs.get("src") for tag, attrs in page.tags if tag == "script")
    assert not [tag for tag, _ in page.tags if tag == "style"]
    bad = [(tag, name) for tag, attrs in page.tags for name in attrs if name == "style" or name.startswith("on")]
    assert bad == []


def test_form_and_batch_validate_with_the_servers_input_schema() -> None:
    """The value rules live in contract.columns; the page reads them from the info route's JSON Schema."""
    for name in ("predict.js", "batch.js"):
        assert "parseRecord(info.spec.features, record, info.input_schema)" in (UI_DIR / "js" / name).read_text()
    spec_js = (UI_DIR / "js" / "spec.js").read_text()
    assert "rules.minimum" in spec_js and "rules.maximum" in spec_js and "rules.enum" in spec_js


def test_the_model_name_comes_from_the_server_not_the_page() -> None:
    assert "churnguard-model" not in (UI_DIR / "index.html").read_text()
    assert "routes().models" in (UI_DIR / "js" / "api.js").read_text()
    scattered = [p.name for p in UI_DIR.glob("js/*.js") if re.search(r"['\"`/]churnguard['\"`/:]", p.read_text())]
    assert scattered == []


@pytest.mark.parametrize("path", WEB_FILES, ids=lambda p: str(p.relative_to(UI_DIR)))
def test_no_external_urls(path: Path) -> None:
    text = path.read_text().replace(SVG_NAMESPACE, "")
    assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, flags=re.IGNORECASE) == []
    assert "@import" not in text


@pytest.mark.parametrize("path", sorted(UI_DIR.glob("js/*.js")), ids=lambda p: p.name)
def test_scripts_never_parse_data_as_markup(path: Path) -> None:
    text = path.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in text, f"{path.name} uses {sink}"
    assert 'setAttribute("style"' not in text and "cssText" not in text


def test_nginx_conf_has_two_envsubst_placeholders_each_once() -> None:
    assert set(re.findall(r"\$\{(\w+)\}", CONF)) == {"PREDICTOR_UPSTREAM", "NGINX_RESOLVERS"}
    assert CONF.count(UPSTREAM) == 1 and CONF.count(RESOLVERS) == 1


def test_nginx_resolves_the_predictor_per_request() -> None:
    """A literal host in proxy_pass is resolved once at start: nginx would refuse to start before KServe creates
    the predictor's Service and keep a stale address after it is recreated."""
    location = re.search(r"location ~ \^/v\[12\]/ \{(.*?)\n        \}", CONF, flags=re.DOTALL)
    assert location, "no /v1 /v2 location"
    body = location.group(1)
    assert re.search(r"resolver \$\{NGINX_RESOLVERS\} valid=\d+s;", body)
    assert f"set $predictor_upstream {UPSTREAM};" in body
    assert re.search(r"proxy_pass \$predictor_upstream;", body)


def test_nginx_conf_runs_unprivileged_on_a_read_only_root() -> None:
    assert re.search(r"^pid /tmp/\S+;$", CONF, flags=re.MULTILINE)
    for directive in (
        "client_body_temp_path",
        "proxy_temp_path",
        "fastcgi_temp_path",
        "uwsgi_temp_path",
        "scgi_temp_path",
    ):
        assert re.search(rf"^\s*{directive}\s+/tmp/\S+;$", CONF, flags=re.MULTILINE), directive
    assert re.search(r"^error_log /dev/stderr\b", CONF, flags=re.MULTILINE)
    assert re.search(r"^\s*access_log /dev/stdout;$", CONF, flags=re.MULTILINE)
    assert f"        {LISTEN_LINE}\n" in CONF and f"        {ROOT_LINE}\n" in CONF
    assert "user " not in CONF.split("events")[0]


def test_nginx_conf_sends_security_headers_on_every_response() -> None:
    for header in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"):
        assert re.search(rf"add_header {header} .* always;", CONF), header
    csp = re.search(r'add_header Content-Security-Policy "([^"]+)"', CONF)
    assert csp and "unsafe-inline" not in csp.group(1) and "frame-ancestors 'none'" in csp.group(1)
    # A location with add_header of its own would silently drop the server-level headers.
    server_body = CONF.split("server {", 1)[1]
    locations = re.findall(r"location[^{]*\{([^}]*)\}", server_body)
    assert locations and not [loc for loc in locations if "add_header" in loc]
    for directive in ("server_tokens off;", "client_max_body_size 2m;", "autoindex off;", "gzip on;"):
        assert directive in CONF


def test_rendering_for_tests_changes_only_root_listen_resolver_and_upstream() -> None:
    rendered = render_nginx_conf(CONF, root=Path("/srv/ui"), listen="127.0.0.1:18080", upstream="http://127.0.0.1:9")
    changed = [(a, b) for a, b in zip(CONF.splitlines(), rendered.splitlines(), strict=True) if a != b]
    assert [b.strip() for _, b in changed] == [
        "listen 127.0.0.1:18080;",
        "root /srv/ui;",
        "resolver 127.0.0.1 valid=10s;",
        "set $predictor_upstream http://127.0.0.1:9;",
    ]
