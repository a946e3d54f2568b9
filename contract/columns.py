"""Each feature's mappings and value rules, defined once: the pandas dtype validation coerces to, the MLflow signature
type, the Open Inference Protocol datatype, the JSON Schema the UI validates with (served on the info route), and
the rules every typed value must pass, with the message that names the rule. Training's validation (pandera),
the predictor's decoder and the UI all derive from here."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from contract.spec import DatasetSpec, Feature


def pandas_dtype(f: Feature) -> str:
    """The dtype a validated column has (nullable integers are pandas' Int64)."""
    if f.type == "float":
        return "float64"
    if f.values is not None and f.value_kind is str:
        return "str"
    return "Int64" if f.nullable else "int64"


def mlflow_type(f: Feature) -> str:
    """The MLflow signature column type (a nullable integer arrives as a float with NaN)."""
    if f.type == "float" or (f.type == "integer" and f.nullable):
        return "double"
    if f.values is not None and f.value_kind is str:
        return "string"
    return "long"


def v2_datatype(f: Feature) -> str:
    """The Open Inference Protocol datatype the model's metadata declares for the feature's input."""
    if f.values is not None and f.value_kind is str:
        return "BYTES"
    return "FP64" if f.type == "float" else "INT64"


@dataclass(frozen=True)
class Rule:
    """One rule on a typed value: `ok` on one value, `ok_all` on an array of them (NaN / None pass: missing
    values are the nullable rule's business), and the message that names it."""

    message: str
    ok: Callable[[Any], bool]
    ok_all: Callable[[Any], Any]


def kind(f: Feature) -> str:
    """What a value of the feature must be, as the rules' messages say it ("an integer", "one of [0, 1, 2]")."""
    if f.values is not None:
        return f"one of {list(f.values)}"
    return "an integer" if f.type == "integer" else "a number"


def below_min(f: Feature) -> str:
    return f"must be >= {f.min:g}"


def above_max(f: Feature) -> str:
    return f"must be <= {f.max:g}"


def target_rule(spec: DatasetSpec) -> str:
    return f"must be one of {list(spec.target.values)}"


def _numeric(f: Feature) -> list[Rule]:
    out = [Rule("must be finite", lambda v: not math.isinf(v), lambda a: ~np.isinf(np.asarray(a, dtype=float)))]
    if f.type == "integer":
        out.append(
            Rule(
                f"must be {kind(f)}",
                lambda v: math.isnan(v) or float(v).is_integer(),
                lambda a: _nan_or(a, lambda x: x == np.floor(x)),
            )
        )
    if f.min is not None:
        lo = f.min
        out.append(Rule(below_min(f), lambda v: not v < lo, lambda a: _nan_or(a, lambda x: x >= lo)))
    if f.max is not None:
        hi = f.max
        out.append(Rule(above_max(f), lambda v: not v > hi, lambda a: _nan_or(a, lambda x: x <= hi)))
    return out


def _nan_or(a: Any, test: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    x = np.asarray(a, dtype=float)
    with np.errstate(invalid="ignore"):
        ok: np.ndarray = np.isnan(x) | test(x)
    return ok


def rules(f: Feature) -> list[Rule]:
    """The rules on a feature's typed values, in the order they are reported (the first broken one names the fault)."""
    if f.is_numeric:
        return _numeric(f)
    values = list(f.values or ())
    allowed = set(values)
    return [
        Rule(
            f"must be {kind(f)}",
            lambda v: v in allowed,
            lambda a: np.asarray([v in allowed for v in np.asarray(a, dtype=object).tolist()], dtype=bool),
        )
    ]


def json_schema(spec: DatasetSpec) -> dict[str, Any]:
    """One instance of the model's input as JSON Schema (draft 2020-12): what the UI checks a form or CSV row
    against before it is sent, the same bounds and category sets the predictor enforces."""
    properties: dict[str, Any] = {}
    for f in spec.features:
        p: dict[str, Any] = {"title": f.name, "description": f.description} if f.description else {"title": f.name}
        if f.values is not None:
            p["enum"] = [*f.values, *([None] if f.nullable else [])]
        else:
            p["type"] = ["integer" if f.type == "integer" else "number", *(["null"] if f.nullable else [])]
            if f.min is not None:
                p["minimum"] = f.min
            if f.max is not None:
                p["maximum"] = f.max
        properties[f.name] = p
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{spec.name} instance",
        "type": "object",
        "properties": properties,
        "required": [f.name for f in spec.features if not f.nullable],
        "additionalProperties": False,
    }
