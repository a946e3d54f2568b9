"""Generate and check the Values table of charts/churnguard/README.md from the `# --` comments of values.yaml."""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "churnguard"
VALUES = CHART_DIR / "values.yaml"
HEADER = CHART_DIR / "README.header.md"
README = CHART_DIR / "README.md"

# Blocks documented as a whole: one row with their whole default, whatever their comment says.
FREE_FORM = frozenset(
    {
        "podSecurityContext",
        "containerSecurityContext",
        "resources",
        "monitoringNamespaceSelector",
        "dnsNamespaceSelector",
    }
)
TABLE_HEAD = "| Key | Type | Default | Description |\n|-----|------|---------|-------------|"

_KEY = re.compile(r"""^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*|"[^"]*"|'[^']*')\s*:(?:\s+(?P<value>.*))?$""")
_BLOCK_SCALAR = re.compile(r"^[|>][-+0-9]*\s*(#.*)?$")

KeyPath = tuple[str, ...]


@dataclass(frozen=True)
class _Key:
    path: KeyPath
    line: int  # 1-based
    description: str | None  # the `# --` block right above the key, or None


def _description(comments: list[str]) -> str | None:
    """The last `# --` block of a run of comment lines (continuation lines `# ...` joined with spaces)."""
    starts = [i for i, text in enumerate(comments) if text == "--" or text.startswith("-- ")]
    if not starts:
        return None
    first = starts[-1]
    parts = [comments[first][2:].strip(), *(text.strip() for text in comments[first + 1 :])]
    return " ".join(part for part in parts if part)


def _scan(values_text: str) -> list[_Key]:
    """Every mapping key outside lists and block scalars, in file order, with its path found by indentation."""
    keys: list[_Key] = []
    stack: list[tuple[int, str]] = []
    comments: list[str] = []
    opaque: int | None = None  # indentation of a key whose value is a list or block scalar
    for number, line in enumerate(values_text.splitlines(), start=1):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if opaque is not None:
            if not stripped or indent > opaque or (indent == opaque and stripped.startswith("-")):
                continue
            opaque = None
        if not stripped:
            comments = []
            continue
        if stripped.startswith("#"):
            text = stripped[1:]
            comments.append(text[1:] if text.startswith(" ") else text)
            continue
        match = _KEY.match(line)
        if match is None:
            if stripped.startswith("-") and stack:
                opaque = stack[-1][0]  # a list under the key above, written at its indentation
            comments = []
            continue
        key = match.group("key")
        if key[0] in "\"'":
            key = key[1:-1]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        keys.append(_Key(tuple(k for _, k in stack), number, _description(comments)))
        comments = []
        value = (match.group("value") or "").strip()
        if _BLOCK_SCALAR.match(value):
            opaque = indent
    return keys


def _lookup(data: Any, path: KeyPath, line: int) -> Any:
    node = data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"values.yaml line {line}: key {'.'.join(path)} was found by indentation but not by YAML")
        node = node[part]
    return node


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "string"


def _is_row(path: KeyPath, value: Any, description: str | None) -> bool:
    """A row unless it is a non-empty mapping without a `# --` comment that is not a free-form block."""
    return not isinstance(value, dict) or not value or description is not None or path[-1] in FREE_FORM


def rows(values_text: str) -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default as compact JSON, description) for every documented key, in values.yaml order."""
    data = yaml.safe_load(values_text)
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ValueError("values.yaml is not a mapping")
    result: list[tuple[str, str, str, str]] = []
    row_paths: list[KeyPath] = []
    seen: set[KeyPath] = set()
    for key in _scan(values_text):
        seen.add(key.path)
        if any(key.path[: len(row)] == row for row in row_paths):
            continue  # inside a block documented as a whole
        value = _lookup(data, key.path, key.line)
        if not _is_row(key.path, value, key.description):
            continue  # a section: its children are the rows
        dotted = ".".join(key.path)
        if key.description is None:
            raise ValueError(f"values.yaml line {key.line}: key {dotted} has no '# -- <description>' comment")
        row_paths.append(key.path)
        default = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        result.append((dotted, _type(value), default, key.description))
    _check_scanned(data, (), set(row_paths), seen)
    return result


def _check_scanned(node: dict[str, Any], prefix: KeyPath, row_paths: set[KeyPath], seen: set[KeyPath]) -> None:
    """Every key YAML sees in a section was found by the line pass (no key is silently left out)."""
    for name, value in node.items():
        path = (*prefix, str(name))
        if path not in seen:
            raise ValueError(f"values.yaml: key {'.'.join(path)} was not found by indentation (unusual YAML layout)")
        if path not in row_paths and isinstance(value, dict):
            _check_scanned(value, path, row_paths, seen)


def _cell(text: str) -> str:
    return text.replace("|", r"\|")


def _code(text: str) -> str:
    if "`" in text:
        return f"`` {_cell(text)} ``"
    return f"`{_cell(text)}`"


def render(values_text: str, header: str) -> str:
    """The chart README: `header`, then the Values table made from values.yaml."""
    lines = [TABLE_HEAD]
    for key, kind, default, description in rows(values_text):
        lines.append(f"| {_cell(key)} | {kind} | {_code(default)} | {_cell(description)} |")
    return header.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write charts/churnguard/README.md, or with --check report (exit 1, unified diff) when it is out of date."""
    parser = argparse.ArgumentParser(prog="python -m tests.chart.values_readme", description=__doc__)
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 with a diff when out of date")
    args = parser.parse_args(argv)
    expected = render(VALUES.read_text(encoding="utf-8"), HEADER.read_text(encoding="utf-8"))
    current = README.read_text(encoding="utf-8") if README.exists() else ""
    relative = README.relative_to(REPO).as_posix()
    if args.check:
        if current == expected:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=f"{relative} (committed)",
            tofile=f"{relative} (from values.yaml)",
        )
        sys.stdout.writelines(diff)
        print(f"{relative} is out of date: run `make chart-docs`", file=sys.stderr)
        return 1
    if current != expected:
        README.write_text(expected, encoding="utf-8")
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
