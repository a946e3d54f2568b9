"""Validate stage: strict checks of a raw CSV against the dataset spec (pandera, no silent coercion)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from training.spec import DatasetSpec, Feature

_KIND = {"integer": "an integer", "float": "a number"}


@dataclass(frozen=True)
class Failure:
    """One broken rule: `row` is the 1-based data row (file line minus the header), None for the whole file."""

    row: int | None
    column: str | None
    value: str
    rule: str


@dataclass
class ValidationResult:
    valid: pd.DataFrame
    """Rows that passed, typed as the spec says (integers int64, floats float64, categories as declared)."""
    failures: list[Failure]
    """Every rule a row or the file broke."""
    warnings: list[Failure] = field(default_factory=list)
    """Reported but not disqualifying (duplicate rows)."""
    rejected: pd.DataFrame | None = None
    """The raw rows that failed, with a `_row` and a `_reasons` column."""

    @property
    def fatal(self) -> list[Failure]:
        """File-level failures: no quarantine can fix them."""
        return [f for f in self.failures if f.row is None]

    @property
    def ok(self) -> bool:
        return not self.failures


def _feature_column(f: Feature) -> pa.Column:
    checks: list[pa.Check] = []
    if f.is_numeric:
        dtype: Any = "float64" if f.type == "float" else ("Int64" if f.nullable else "int64")
        checks.append(pa.Check(lambda s: ~np.isinf(s.astype("float64")), name="must be finite"))
        if f.min is not None:
            checks.append(pa.Check(lambda s, lo=f.min: s >= lo, name=f"must be >= {f.min:g}"))
        if f.max is not None:
            checks.append(pa.Check(lambda s, hi=f.max: s <= hi, name=f"must be <= {f.max:g}"))
    else:
        assert f.values is not None
        dtype = "str" if f.value_kind is str else ("Int64" if f.nullable else "int64")
        checks.append(pa.Check(lambda s, v=list(f.values): s.isin(v), name=f"must be one of {list(f.values)}"))
    return pa.Column(dtype, checks, nullable=f.nullable, coerce=True, required=True)


def schema(spec: DatasetSpec, *, require_target: bool = True) -> pa.DataFrameSchema:
    """The pandera schema of a raw CSV (all cells read as text), derived from the spec."""
    columns: dict[str, pa.Column] = {f.name: _feature_column(f) for f in spec.features}
    for name in spec.id_columns:
        columns[name] = pa.Column("str", nullable=False, unique=True, coerce=True)
    t = spec.target
    columns[t.name] = pa.Column(
        "str" if isinstance(t.positive, str) else "int64",
        [
            pa.Check(lambda s, v=list(t.values): s.isin(v), name=f"must be one of {list(t.values)}"),
            pa.Check(lambda s: s.nunique() >= 2, element_wise=False, name="needs at least two classes"),
        ],
        coerce=True,
        required=require_target,
    )
    return pa.DataFrameSchema(columns, strict=True, name=spec.name)


def _rule(check: str, column: str | None, spec: DatasetSpec) -> str:
    if check == "column_in_schema":
        return "unknown column"
    if check == "column_in_dataframe":
        return "missing column"
    if check == "not_nullable":
        return "must not be empty"
    if check == "field_uniqueness":
        return "id must be unique"
    if check.startswith(("coerce_dtype", "dtype(")):
        if column in spec.feature_names:
            f = spec.feature(column)
            return f"must be {_KIND[f.type]}" if f.is_numeric else f"must be one of {list(f.values or ())}"
        return f"must be one of {list(spec.target.values)}" if column == spec.target.name else "wrong type"
    return check


def _failures(err: SchemaErrors, spec: DatasetSpec) -> list[Failure]:
    cases = err.failure_cases
    coerce = cases["check"].astype(str).str.startswith(("coerce_dtype", "dtype("))
    # In a column with unparsable cells the value checks ran on text: their verdicts mean nothing this pass.
    unparsed_columns = set(cases.loc[coerce, "column"])
    out: list[Failure] = []
    for case in cases.itertuples(index=False):
        check = str(case.check)
        is_coerce = check.startswith(("coerce_dtype", "dtype("))
        if case.column in unparsed_columns and not is_coerce and check != "not_nullable":
            continue
        if is_coerce and pd.isna(case.failure_case):  # an empty cell: reported as not_nullable
            continue
        row = None if pd.isna(case.index) else int(case.index) + 1
        if check.startswith("column_in"):
            column, value = str(case.failure_case), ""
        else:
            column, value = str(case.column), ("" if row is None else str(case.failure_case))
        failure = Failure(row, column, value, _rule(check, column, spec))
        if failure not in out:
            out.append(failure)
    return out


def _check(sch: pa.DataFrameSchema, df: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame | None, list[Failure]]:
    try:
        return sch.validate(df, lazy=True), []
    except SchemaErrors as err:
        return None, _failures(err, spec)


def read_raw(source: str | Path | io.StringIO) -> pd.DataFrame:
    """Read a CSV with every cell as text, so nothing is coerced before the schema looks at it."""
    return pd.read_csv(source, dtype=str, skipinitialspace=True)


def validate_frame(raw: pd.DataFrame, spec: DatasetSpec, *, require_target: bool = True) -> ValidationResult:
    """Check every rule on every row; return the typed good rows, the failures and the rejected raw rows."""
    if raw.empty:
        return ValidationResult(raw, [Failure(None, None, "", "no data rows")])
    raw = raw.reset_index(drop=True)
    sch = schema(spec, require_target=require_target)
    typed, failures = _check(sch, raw, spec)
    if typed is None and not any(f.row is None for f in failures):
        # A column with unparsable cells had its value checks run on text: check its parsable cells again.
        for column in {f.column for f in failures if f.rule.startswith("must be") and f.row is not None}:
            unparsed = [f.row - 1 for f in failures if f.column == column and f.row is not None]
            sub = pa.DataFrameSchema({column: sch.columns[column]})
            failures += [f for f in _check(sub, raw[[column]].drop(index=unparsed), spec)[1] if f not in failures]
        good = raw.drop(index=sorted({f.row - 1 for f in failures if f.row is not None}))
        # What survives must still hold as a whole (e.g. two classes).
        typed, more = _check(sch, good, spec) if not good.empty else (None, [Failure(None, None, "", "no valid rows")])
        failures += more
    bad = sorted({f.row - 1 for f in failures if f.row is not None})
    rejected = None
    if bad:
        reasons: dict[int, list[str]] = {}
        for f in failures:
            if f.row is not None:
                reasons.setdefault(f.row - 1, []).append(f"{f.column}={f.value!r}: {f.rule}")
        rejected = raw.loc[bad].assign(_row=[i + 1 for i in bad], _reasons=["; ".join(reasons[i]) for i in bad])
    warnings = [
        Failure(int(i) + 1, None, "", "duplicate of an earlier row")
        for i in np.flatnonzero(raw.duplicated(keep="first").to_numpy())
    ]
    if typed is None or any(f.row is None for f in failures):
        typed = raw.iloc[0:0]
    failures.sort(key=lambda f: (f.row or 0, f.column or ""))
    return ValidationResult(_to_model_types(typed, spec), failures, warnings, rejected)


def _to_model_types(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Nullable integer columns become float64 (NaN for missing): the dtype sklearn expects."""
    out = df.copy()
    for f in spec.features:
        if f.name in out and str(out[f.name].dtype) == "Int64":
            out[f.name] = out[f.name].astype("float64")
    return out


def validate_file(path: str | Path, spec: DatasetSpec, *, require_target: bool = True) -> ValidationResult:
    """Validate a CSV on disk; unreadable files come back as one file-level failure, never an exception."""
    try:
        raw = read_raw(path)
    except pd.errors.EmptyDataError:
        return ValidationResult(pd.DataFrame(), [Failure(None, None, str(path), "file is empty")])
    except pd.errors.ParserError as exc:
        detail = re.sub(r"\s+", " ", str(exc)).strip()
        return ValidationResult(pd.DataFrame(), [Failure(None, None, str(path), f"not a readable CSV: {detail}")])
    except UnicodeDecodeError:
        return ValidationResult(pd.DataFrame(), [Failure(None, None, str(path), "not UTF-8 text")])
    return validate_frame(raw, spec, require_target=require_target)
