"""Draft a dataset spec from a CSV: types, integer vs float, bounds with a margin, category sets, nullability and
likely id columns, with a note on every guess a person should review (pure: a raw frame in, a spec out)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from contract.spec import DatasetSpec

INTEGER = re.compile(r"^[+-]?[0-9]+$")
NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ID_NAME = re.compile(r"(^id$|_id$|Id$|ID$|^uuid$)")
POSITIVE = ("1", "yes", "true", "churn", "churned", "y", "t", "left", "exited")
MAX_CATEGORIES = 50
"""More distinct strings than this is rarely a category: reported for review (still drafted as one)."""
MARGIN = 0.1
"""Bounds reach this share of the observed range beyond it (never below 0 for non-negative data)."""


class SpecDraftError(ValueError):
    """The CSV cannot be drafted into a spec as it is (the message says what to change)."""


@dataclass(frozen=True)
class Draft:
    spec: DatasetSpec
    inferred: list[tuple[str, str, str]]
    """(column, what was inferred, from what) for each column."""
    review: list[str]
    """Guesses a person should check before training on the spec."""


def _nice(x: float, up: bool) -> float:
    """Round a bound outwards to two significant digits (e.g. 118.4 -> 120, 0.0371 -> 0.038)."""
    if x == 0:
        return 0.0
    digits = 1 - math.floor(math.log10(abs(x)))
    scale = 10.0**digits
    return (math.ceil(x * scale) if up else math.floor(x * scale)) / scale


def _bounds(values: pd.Series, integer: bool) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    pad = (hi - lo) * MARGIN or max(abs(hi), 1.0) * MARGIN
    low, high = lo - pad, hi + pad
    if lo >= 0:
        low = max(low, 0.0)
    low, high = _nice(low, up=False), _nice(high, up=True)
    if integer:
        low, high = float(math.floor(low)), float(math.ceil(high))
    return low, high


def _decimals(texts: pd.Series) -> int:
    places = texts.str.extract(r"\.([0-9]+)$")[0].dropna().str.len()
    return int(min(places.max(), 4)) if len(places) else 0


def _target(raw: pd.Series, name: str, positive: str | None) -> dict[str, Any]:
    values = sorted(raw.dropna().unique().tolist())
    if raw.isna().any():
        raise SpecDraftError(f"target column {name!r} has empty cells: a label is needed on every row")
    if len(values) != 2:
        raise SpecDraftError(f"target column {name!r} needs exactly two values, found {len(values)}: {values[:10]}")
    if positive is None:
        guesses = [v for v in values if v.strip().lower() in POSITIVE]
        if len(guesses) != 1:
            raise SpecDraftError(f"target {name!r} has values {values}: say which means churn with --positive")
        positive = guesses[0]
    if positive not in values:
        raise SpecDraftError(f"--positive {positive!r} is not one of the target's values {values}")
    negative = next(v for v in values if v != positive)
    if all(INTEGER.match(v) for v in values):
        return {"name": name, "positive": int(positive), "negative": int(negative)}
    return {"name": name, "positive": positive, "negative": negative}


def draft(raw: pd.DataFrame, *, target: str, positive: str | None = None, name: str = "churn") -> Draft:
    """A spec that validates and trains `raw` (every cell as text, as `validate.read_raw` reads it)."""
    if target not in raw.columns:
        raise SpecDraftError(f"no column {target!r} in the CSV; its columns are {list(raw.columns)}")
    bad_names = [c for c in raw.columns if not NAME.match(str(c))]
    if bad_names:
        raise SpecDraftError(
            f"column names must be identifiers (letters, digits, _; not starting with a digit): rename {bad_names}"
        )
    inferred: list[tuple[str, str, str]] = []
    review: list[str] = []
    target_spec = _target(raw[target], target, positive)
    inferred.append((target, f"target, churn = {target_spec['positive']!r}", f"values {raw[target].nunique()}"))
    if positive is None:
        review.append(f"{target}: {target_spec['positive']!r} was taken to mean churn (--positive to change)")
    ids: list[str] = []
    features: list[dict[str, Any]] = []
    n = len(raw)
    for column in raw.columns:
        if column == target:
            continue
        texts = raw[column].dropna().astype(str)
        nullable = bool(raw[column].isna().any())
        if texts.empty:
            raise SpecDraftError(f"column {column!r} is empty in every row: remove it from the CSV")
        distinct = texts.nunique()
        integer = bool(texts.map(lambda s: bool(INTEGER.match(s))).all())
        number = integer or bool(texts.map(lambda s: bool(NUMBER.match(s))).all())
        if (ID_NAME.search(column) or (not number and distinct == n)) and distinct == n and not nullable:
            ids.append(column)
            inferred.append((column, "id column", f"{distinct} distinct values in {n} rows"))
            review.append(f"{column}: taken as an id column (unique in every row, not a feature)")
            continue
        f: dict[str, Any] = {"name": column}
        if integer and distinct <= 2:
            f |= {"type": "category", "values": sorted({int(v) for v in texts})}
            inferred.append((column, f"category {f['values']}", "integers with two values (a flag)"))
        elif number:
            values = texts.astype(float)
            f["type"] = "integer" if integer else "float"
            f["min"], f["max"] = _bounds(values, integer)
            f["step"] = 1.0 if integer else 10.0 ** -_decimals(texts)
            seen = f"observed {values.min():g} to {values.max():g}"
            inferred.append((column, f"{f['type']} in [{f['min']:g}, {f['max']:g}]", seen))
            if integer and distinct <= 10:
                review.append(f"{column}: integer with {distinct} values; make it a category if they are codes")
        else:
            f |= {"type": "category", "values": sorted(texts.unique().tolist())}
            inferred.append((column, f"category of {distinct} values", f"text such as {texts.iloc[0]!r}"))
            if distinct > MAX_CATEGORIES:
                review.append(f"{column}: {distinct} distinct values; an id, free text or a column to drop?")
        if nullable:
            f["nullable"] = True
            share = raw[column].isna().mean()
            review.append(f"{column}: {share:.1%} empty cells; served as missing (nullable: true)")
        features.append(f)
    if not features:
        raise SpecDraftError("no feature columns left besides the target and id columns")
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "churn"
    spec = DatasetSpec.model_validate({"name": slug, "target": target_spec, "id_columns": ids, "features": features})
    return Draft(spec, inferred, review)
