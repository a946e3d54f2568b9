"""The chart README's Values table is generated from values.yaml, covers every value and stays current."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.chart.values_readme import FREE_FORM, HEADER, README, VALUES, render, rows

pytestmark = pytest.mark.unit


def leaf_paths(node: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of every leaf of values.yaml, not descending into the free-form blocks."""
    paths = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in FREE_FORM:
            paths.extend(leaf_paths(value, f"{path}."))
        else:
            paths.append(path)
    return paths


def test_readme_is_generated_from_values_yaml() -> None:
    expected = render(VALUES.read_text(encoding="utf-8"), HEADER.read_text(encoding="utf-8"))
    assert README.read_text(encoding="utf-8") == expected, (
        "charts/churnguard/README.md is out of date: run `make chart-docs`"
    )


def test_every_leaf_value_is_covered_by_a_row() -> None:
    values_text = VALUES.read_text(encoding="utf-8")
    keys = [key for key, *_ in rows(values_text)]
    assert len(keys) == len(set(keys)), keys
    uncovered = [
        path
        for path in leaf_paths(yaml.safe_load(values_text))
        if not any(path == key or path.startswith(f"{key}.") for key in keys)
    ]
    assert not uncovered, uncovered


def test_rows_reject_an_undocumented_leaf() -> None:
    values_text = (
        "# Predictor settings.\n"
        "predictor:\n"
        "  # -- Served model name.\n"
        "  modelName: churnguard\n"
        "  # Replicas, documented with a plain comment only.\n"
        "  replicas: 1\n"
    )
    with pytest.raises(ValueError, match=r"line 6.*predictor\.replicas"):
        rows(values_text)


def test_rows_read_descriptions_types_and_defaults() -> None:
    values_text = (
        "# -- Labels, documented as a whole.\n"
        "labels:\n"
        "  team: ml\n"
        "# A section.\n"
        "section:\n"
        "  # -- First line\n"
        "  # continued.\n"
        "  ratio: 0.5\n"
        "  # -- Node port; null lets Kubernetes pick.\n"
        "  nodePort: null\n"
    )
    assert rows(values_text) == [
        ("labels", "object", '{"team":"ml"}', "Labels, documented as a whole."),
        ("section.ratio", "float", "0.5", "First line continued."),
        ("section.nodePort", "null", "null", "Node port; null lets Kubernetes pick."),
    ]


def test_a_pipe_in_a_description_is_escaped() -> None:
    values_text = '# -- Either "a" | "b".\nchoice: "a|b"\n'
    table_row = render(values_text, "# Title\n").splitlines()[-1]
    assert table_row == r'| choice | string | `"a\|b"` | Either "a" \| "b". |'
