"""Validate stage: strict checks of a raw CSV against the dataset spec (pandera, no silent coercion)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from contract import columns
from contract.spec import DatasetSpec, Feature

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# What a person reads as a number, and nothing else: pandas' parsers also take full-width and Arabic-Indic digits,
# `4_0` (Python's digit separator) and stop at a NUL (`34\x00.16` is 34.0). Spaces around a value are fine (the
# same value, read the same way); `inf` is left for the "must be finite" rule to name.
_INTEGER = r" *[+-]?[0-9]+ *"
_NUMBER = r" *[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity)) *"
_CONTROL = r"[\x00-\x1f\x7f-\x9f]"
"""C0 controls (NUL, tab, newline, escape...), DEL and C1: invisible in a cell, and they change how it parses."""
_FITS_INT64 = len(str(INT64_MAX))
"""Integer cells with fewer characters than this always fit in 64 bits: only longer ones are parsed to check."""
BINARY_NUL_SHARE = 0.01
"""A file with a NUL byte in its header line, or more than this share of NUL bytes, is binary (or UTF-16): not a
UTF-8 CSV with a stray NUL in a cell (that one is reported on its row)."""


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


# -- the rules, derived from the spec: first how each cell is written (text), then its value (typed) -----------
def _per_distinct(test: Callable[[pd.Series], pd.Series]) -> Callable[[pd.Series], pd.Series]:
    """A text rule depends on the text alone: test each distinct cell once (a column has far fewer than rows)."""

    def check(s: pd.Series) -> pd.Series:
        codes, uniques = pd.factorize(s)  # missing cells are -1: they pass (not_nullable names them)
        cells, distinct = s.to_numpy(dtype=object), np.asarray(uniques, dtype=object)
        present = codes >= 0
        if not (distinct[codes[present]] == cells[present]).all():  # pandas' hash tables end a string at a NUL
            exact = list({*cells[present]})
            verdict = dict(zip(exact, test(pd.Series(exact, dtype=object)), strict=True))
            return pd.Series([verdict.get(v, True) for v in cells], index=s.index, dtype=bool)
        passed = np.asarray(test(pd.Series(distinct, dtype=object)), dtype=bool)
        return pd.Series(np.where(present, passed[codes], True), index=s.index)

    return check


def _matches(pattern: str) -> Callable[[pd.Series], pd.Series]:
    return _per_distinct(lambda s: s.str.fullmatch(pattern).astype(bool))


def _lacks(pattern: str) -> Callable[[pd.Series], pd.Series]:
    return _per_distinct(lambda s: ~s.str.contains(pattern).astype(bool))


def _int_within(ok: Callable[[int], bool]) -> Callable[[pd.Series], pd.Series]:
    """True where an integer cell's value is `ok`; cells not written as integers pass (other rules name them)."""

    def test(s: pd.Series) -> pd.Series:
        fits = s.str.len() < _FITS_INT64
        return pd.Series([f or not re.fullmatch(_INTEGER, v) or ok(int(v)) for f, v in zip(fits, s, strict=True)])

    return _per_distinct(test)


def _written_as_number(kind: str, *, integer: bool) -> list[pa.Check]:
    """How a number must be written; `kind` is what it must be ("an integer", "one of [0, 1, 2]")."""
    return [
        pa.Check(_lacks(r"[^\x00-\x7f]"), name=f"must be {kind} written with ASCII digits"),
        pa.Check(_lacks("_"), name=f"must be {kind} written without underscores"),
        pa.Check(_matches(_INTEGER if integer else _NUMBER), name=f"must be {kind}"),
    ]


def _int64_range(f: Feature) -> list[pa.Check]:
    """Integers beyond 64 bits are out of range (pandas' int64 parser would only say "not an integer")."""
    hi = columns.above_max(f) if f.max is not None and f.max < INT64_MAX else "must fit in a 64-bit integer"
    lo = columns.below_min(f) if f.min is not None and f.min > INT64_MIN else "must fit in a 64-bit integer"
    return [
        pa.Check(_int_within(lambda v: v <= INT64_MAX), name=hi),
        pa.Check(_int_within(lambda v: v >= INT64_MIN), name=lo),
    ]


def _text_column(kind: str | None, *, integer: bool, nullable: bool, extra: list[pa.Check] | None = None) -> pa.Column:
    """A column read as text: not empty (unless nullable), no control characters, and written as `kind` if given."""
    checks = [pa.Check(_lacks(_CONTROL), name="contains a control character")]
    if kind is not None:
        checks += _written_as_number(kind, integer=integer) + (extra or [])
    return pa.Column(None, checks, nullable=nullable, required=False)


def text_schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    """The rules on how each cell of a raw CSV is written, derived from the spec. They run first; a cell that breaks
    one is reported once (its first broken rule) and is not parsed (`schema` would read `４０` as 40)."""
    by_name: dict[str, pa.Column] = {}
    for f in spec.features:
        if f.is_numeric:
            extra = _int64_range(f) if f.type == "integer" else []
            by_name[f.name] = _text_column(
                columns.kind(f), integer=f.type == "integer", nullable=f.nullable, extra=extra
            )
        elif f.value_kind is int:
            by_name[f.name] = _text_column(columns.kind(f), integer=True, nullable=f.nullable)
        else:
            by_name[f.name] = _text_column(None, integer=False, nullable=f.nullable)
    for name in spec.id_columns:
        by_name[name] = _text_column(None, integer=False, nullable=False)
    t = spec.target
    kind = None if isinstance(t.positive, str) else f"one of {list(t.values)}"
    by_name[t.name] = _text_column(kind, integer=True, nullable=False)
    return pa.DataFrameSchema(by_name, name=f"{spec.name} (text)")


def _feature_column(f: Feature) -> pa.Column:
    checks = [
        pa.Check(lambda s, ok=rule.ok_all: pd.Series(ok(s), index=s.index), name=rule.message)
        for rule in columns.rules(f)
    ]
    return pa.Column(columns.pandas_dtype(f), checks, nullable=f.nullable, coerce=True, required=True)


def schema(spec: DatasetSpec, *, require_target: bool = True) -> pa.DataFrameSchema:
    """The pandera schema of the typed values of a raw CSV (cells read as text, then coerced), derived from the
    spec. Cells are checked against `text_schema` first."""
    by_name: dict[str, pa.Column] = {f.name: _feature_column(f) for f in spec.features}
    for name in spec.id_columns:
        by_name[name] = pa.Column("str", nullable=False, unique=True, coerce=True, required=require_target)
    t = spec.target
    by_name[t.name] = pa.Column(
        "str" if isinstance(t.positive, str) else "int64",
        [
            pa.Check(lambda s, v=list(t.values): s.isin(v), name=columns.target_rule(spec)),
            pa.Check(lambda s: s.nunique() >= 2, element_wise=False, name="needs at least two classes"),
        ],
        coerce=True,
        required=require_target,
    )
    return pa.DataFrameSchema(by_name, strict=True, name=spec.name)


# -- running the schemas and turning pandera's failure cases into Failures ------------------------------------
def _is_coerce(check: str) -> bool:
    return check.startswith(("coerce_dtype", "dtype("))


def _rule(check: str, column: str | None, spec: DatasetSpec) -> str:
    if check == "column_in_schema":
        return "unknown column"
    if check == "column_in_dataframe":
        return "missing column"
    if check == "not_nullable":
        return "must not be empty"
    if check == "field_uniqueness":
        return "id must be unique"
    if _is_coerce(check):
        if column in spec.feature_names:
            return f"must be {columns.kind(spec.feature(column))}"
        return columns.target_rule(spec) if column == spec.target.name else "wrong type"
    return check


def _failures(err: SchemaErrors, spec: DatasetSpec) -> list[Failure]:
    """Pandera's failure cases as Failures, in check order within each cell (the first is the one that counts)."""
    cases = err.failure_cases.sort_values("check_number", kind="stable", na_position="first")
    out: list[Failure] = []
    for case in cases.itertuples(index=False):
        check = str(case.check)
        if _is_coerce(check) and pd.isna(case.failure_case):  # an empty cell: reported as not_nullable
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


def _first_per_cell(failures: list[Failure]) -> list[Failure]:
    seen: set[tuple[int | None, str | None]] = set()
    out = []
    for f in failures:
        if f.row is None or (f.row, f.column) not in seen:
            seen.add((f.row, f.column))
            out.append(f)
    return out


def _misnamed(header: str, spec_name: str) -> str | None:
    """How `header` differs from `spec_name` if only by spaces around it or by case, else None."""
    if header.strip().casefold() != spec_name.casefold():
        return None
    how = [
        *(["with surrounding spaces"] if header != header.strip() else []),
        *(["in another case (names are case-sensitive)"] if header.strip() != spec_name else []),
    ]
    return f'column "{header}" looks like "{spec_name}" {" and ".join(how)}'


def _header(raw: pd.DataFrame, sch: pa.DataFrameSchema, spec: DatasetSpec) -> list[Failure]:
    """Unknown and missing columns; a header that differs from a missing spec column only by spaces around it or
    by case is one failure that says so, not an unknown plus a missing one."""
    names = pa.DataFrameSchema({n: pa.Column(required=c.required) for n, c in sch.columns.items()}, strict=True)
    failures = _check(names, raw.head(0), spec)[1]
    missing = [str(f.column) for f in failures if f.rule == "missing column"]
    out, matched = [], set()
    for f in failures:
        if f.rule == "unknown column":
            near = next(((m, why) for m in missing if m not in matched and (why := _misnamed(str(f.column), m))), None)
            if near is not None:
                matched.add(near[0])
                f = Failure(None, f.column, "", near[1])  # noqa: PLW2901
        out.append(f)
    return [f for f in out if not (f.rule == "missing column" and f.column in matched)]


def _value_failures(column: str, sch: pa.DataFrameSchema, cells: pd.DataFrame, spec: DatasetSpec) -> list[Failure]:
    """The value rules on one column's cells. A cell that still cannot be parsed (an integer category beyond 64
    bits) fails that alone, and the value rules run again without it: pandera ran them on text, meaninglessly."""
    try:
        pa.DataFrameSchema({column: sch.columns[column]}).validate(cells, lazy=True)
        return []
    except SchemaErrors as err:
        cases = err.failure_cases
        coerce = cases["check"].astype(str).map(_is_coerce) & cases["index"].notna() & cases["failure_case"].notna()
        found = [f for f in _failures(err, spec) if f.row is not None]
        if not coerce.any():
            return found
        unparsed = {int(i) for i in cases.loc[coerce, "index"]}
        unparsable = _rule("coerce_dtype", column, spec)
        return [f for f in found if f.row is not None and f.row - 1 in unparsed and f.rule == unparsable] + (
            _value_failures(column, sch, cells.drop(index=sorted(unparsed)), spec)
        )


def _cell_failures(raw: pd.DataFrame, spec: DatasetSpec, sch: pa.DataFrameSchema) -> list[Failure]:
    """Every rule broken by every cell: first how it is written (one failure per cell: the first rule it breaks),
    then, for the cells written right, their values, column by column."""
    failures = _first_per_cell(_check(text_schema(spec), raw, spec)[1])
    for column in raw.columns.intersection(list(sch.columns)):
        miswritten = sorted({f.row - 1 for f in failures if f.column == column and f.row is not None})
        failures += _value_failures(column, sch, raw[[column]].drop(index=miswritten), spec)
    return failures


def read_raw(source: str | Path | io.StringIO) -> pd.DataFrame:
    """Read a CSV with every cell as text, so nothing is coerced before the schemas look at it. pandas' C parser
    ends a cell at a NUL (`34\\x00.16` is read as "34"): text with a NUL goes through its Python parser, which keeps
    the NUL for the control-character rule to name."""
    text = source.getvalue() if isinstance(source, io.StringIO) else Path(source).read_text(encoding="utf-8")
    engine: Literal["c", "python"] = "python" if "\0" in text else "c"
    return pd.read_csv(io.StringIO(text), dtype=str, skipinitialspace=True, engine=engine)


def validate_frame(raw: pd.DataFrame, spec: DatasetSpec, *, require_target: bool = True) -> ValidationResult:
    """Check every rule on every row; return the typed good rows, the failures and the rejected raw rows."""
    if raw.empty:
        return ValidationResult(raw, [Failure(None, None, "", "no data rows")])
    raw = raw.reset_index(drop=True)
    sch = schema(spec, require_target=require_target)
    failures = _header(raw, sch, spec) + _cell_failures(raw, spec, sch)
    typed = None
    while all(f.row is not None for f in failures):  # what survives must still hold as a whole (e.g. two classes)
        good = raw.drop(index=sorted({f.row - 1 for f in failures if f.row is not None}))
        typed, more = _check(sch, good, spec) if not good.empty else (None, [Failure(None, None, "", "no valid rows")])
        failures += more
        if typed is not None or not more:
            break
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


def _file_failure(path: str | Path, rule: str) -> ValidationResult:
    return ValidationResult(pd.DataFrame(), [Failure(None, None, str(path), rule)])


def _text(data: bytes) -> tuple[str | None, str]:
    """The file's text, or None and why it is not a UTF-8 CSV."""
    try:
        text = data.decode("utf-8-sig")  # a leading BOM (Excel's "CSV UTF-8") is not part of the first column name
    except UnicodeDecodeError as exc:
        hint = "; it looks like UTF-16: save it as UTF-8" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else ""
        return None, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}){hint}"
    nuls = data.count(0)
    if nuls and (b"\0" in data.split(b"\n", 1)[0] or nuls > BINARY_NUL_SHARE * len(data)):
        return None, f"binary file, not CSV text ({nuls:,} NUL bytes; UTF-16 text must be saved as UTF-8)"
    return text, ""


def read_file(path: str | Path) -> tuple[pd.DataFrame | None, str]:
    """A CSV on disk with every cell as text, or None and why it cannot be read (never an exception)."""
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        return None, "is a directory, not a CSV file"
    except FileNotFoundError:
        return None, "file not found"
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror or exc}"
    text, why = _text(data)
    if text is None:
        return None, why
    try:
        return read_raw(io.StringIO(text)), ""
    except pd.errors.EmptyDataError:
        return None, "file is empty"
    except pd.errors.ParserError as exc:
        detail = re.sub(r"\s+", " ", str(exc)).strip()
        return None, f"not a readable CSV: {detail}"


def validate_file(path: str | Path, spec: DatasetSpec, *, require_target: bool = True) -> ValidationResult:
    """Validate a CSV on disk; unreadable files come back as one file-level failure, never an exception."""
    raw, why = read_file(path)
    if raw is None:
        return _file_failure(path, why)
    return validate_frame(raw, spec, require_target=require_target)
