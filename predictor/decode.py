"""Request decoding: V1 instances and V2 inputs, checked against the spec, straight to a NumPy array."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
from kserve.utils.numpy_codec import to_np_dtype

from contract import columns
from contract.spec import DatasetSpec, Feature

MAX_DETAILS = 50
"""Errors listed per response; the count says how many there were in all."""

_NUMBERS = {int, float}
"""The Python types a numeric value may have in JSON (bool is its own type here, and refused)."""
FAST_MIN_ROWS = 8
"""Below this many instances the row-by-row decoder is faster than the vectorised pass."""


@dataclass
class RequestError(Exception):
    """A client error: HTTP `status`, a message, and one detail per broken rule (field, value, rule, row)."""

    message: str
    details: list[dict[str, Any]] = field(default_factory=list)
    status: int = 422
    reason: str = "validation"
    """Bounded label for the errors metric: validation, too_many_rows, malformed, too_large, feedback."""

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = _safe(
            {"error": self.message, "details": self.details[:MAX_DETAILS], "error_count": len(self.details)}
        )
        return body


INT64 = (-(2**63), 2**63 - 1)


def _escaped(s: str) -> str:
    """Lone surrogates (valid in JSON, not in UTF-8) as backslash escapes: any encoder can write the rest."""
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def show(value: Any) -> Any:
    """A value as it may be echoed back: JSON scalars as they are, anything else shortened to text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if INT64[0] <= value <= INT64[1] else str(value)[:100]
    if isinstance(value, str):
        return _escaped(value[:100])
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return type(value).__name__


def _safe(obj: Any) -> Any:
    """An error body any JSON encoder can write, whatever the client sent (names, values, messages)."""
    if isinstance(obj, dict):
        return {k: _safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_safe(v) for v in obj]
    if isinstance(obj, str):
        return _escaped(obj)
    return show(obj) if isinstance(obj, int) else obj


class Decoder:
    """Checks values against the spec and encodes them as the model's fast path expects."""

    def __init__(self, spec: DatasetSpec, max_rows: int) -> None:
        self.spec = spec
        self.max_rows = max_rows
        self.names = spec.feature_names
        self._codes = [
            {v: float(i) for i, v in enumerate(f.values)} if f.values is not None else None for f in spec.features
        ]
        self._rules = [columns.rules(f) for f in spec.features]
        self._getter = operator.itemgetter(*self.names)
        self._name_set = frozenset(self.names)

    def _value(self, j: int, f: Feature, v: Any, row: int, errors: list[dict[str, Any]]) -> float:
        def bad(rule: str) -> float:
            errors.append({"row": row, "field": f.name, "value": show(v), "rule": rule})
            return math.nan

        if v is None:
            return math.nan if f.nullable else bad("is required")
        codes, rules = self._codes[j], self._rules[j]
        if codes is not None:
            if isinstance(v, bool) or (type(v) is not f.value_kind and not (f.value_kind is int and _integral(v))):
                return bad(rules[0].message)
            code = codes.get(int(v) if f.value_kind is int else v)
            return code if code is not None else bad(rules[0].message)
        if isinstance(v, bool) or not isinstance(v, int | float):
            return bad("must be a number")
        x = float(v)
        for rule in rules:
            if not rule.ok(x):
                return bad(rule.message)
        return x

    def _rows(self, n: int) -> None:
        if n == 0:
            raise RequestError("no instances given", status=400, reason="malformed")
        if n > self.max_rows:
            raise RequestError(
                f"{n} instances in one request; the limit is {self.max_rows}", status=413, reason="too_many_rows"
            )

    def v1(self, body: Any) -> np.ndarray:
        """`{"instances": [{feature: value, ...} | [values in spec order], ...]}` → (rows, features)."""
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
            raise RequestError('body must be a JSON object with an "instances" list', status=400, reason="malformed")
        extra = sorted(set(body) - {"instances", "parameters"})
        if extra:
            raise RequestError(f"unknown top-level fields {extra}", status=400, reason="malformed")
        instances = body["instances"]
        self._rows(len(instances))
        # The vectorised pass has a fixed cost: below ~8 rows the row-by-row path is faster (bench/README.md).
        fast = self._v1_fast(instances) if len(instances) >= FAST_MIN_ROWS else None
        if fast is not None:
            return fast
        x = np.empty((len(instances), len(self.names)))
        errors: list[dict[str, Any]] = []
        for i, inst in enumerate(instances):
            if isinstance(inst, dict):
                unknown = inst.keys() - self._name_set
                for name in sorted(unknown) if unknown else ():
                    errors.append({"row": i, "field": name, "value": show(inst[name]), "rule": "unknown field"})
                row = []
                for j, f in enumerate(self.spec.features):
                    if f.name not in inst and not f.nullable:
                        errors.append({"row": i, "field": f.name, "value": None, "rule": "is required"})
                        row.append(math.nan)
                    else:
                        row.append(self._value(j, f, inst.get(f.name), i, errors))
                x[i] = row
            elif isinstance(inst, list):
                if len(inst) != len(self.names):
                    errors.append(
                        {
                            "row": i,
                            "field": None,
                            "value": len(inst),
                            "rule": f"an array instance needs {len(self.names)} values in the order {self.names}",
                        }
                    )
                    continue
                x[i] = [self._value(j, f, inst[j], i, errors) for j, f in enumerate(self.spec.features)]
            else:
                errors.append({"row": i, "field": None, "value": show(inst), "rule": "must be an object or array"})
        if errors:
            raise RequestError(f"{len(errors)} invalid value(s)", errors)
        return x

    def _v1_fast(self, instances: list[Any]) -> np.ndarray | None:
        """One vectorised pass for the common case: complete instances of plain values, all valid. Anything else
        (missing, extra, null, wrong type, out of bounds) returns None, and the row-by-row path names each fault.
        Types are checked a column at a time (`set(map(type, ...))`): no Python call per value."""
        k, n = len(self.names), len(instances)
        kinds = set(map(type, instances))
        if kinds not in ({dict}, {list}) or set(map(len, instances)) != {k}:
            return None
        if kinds == {dict}:
            try:
                rows = list(map(self._getter, instances))
            except KeyError:
                return None
            cols = list(zip(*rows, strict=True)) if k > 1 else [rows]
        else:
            cols = list(zip(*instances, strict=True))
        x = np.empty((n, k))
        for j, (f, col) in enumerate(zip(self.spec.features, cols, strict=True)):
            codes = self._codes[j]
            if codes is not None:  # only a string equals a string value; True and 1.0 equal the int value 1
                if f.value_kind is not str and set(map(type, col)) != {f.value_kind}:
                    return None
                try:
                    x[:, j] = np.fromiter(map(codes.__getitem__, col), np.float64, n)
                except (KeyError, TypeError):  # not a value of the feature; or unhashable (a list, an object)
                    return None
                continue
            if not set(map(type, col)) <= _NUMBERS:
                return None
            try:
                arr = np.array(col, dtype=np.float64)
            except OverflowError:  # an integer beyond float64
                return None
            if not np.isfinite(arr).all() or not all(rule.ok_all(arr).all() for rule in self._rules[j]):
                return None
            x[:, j] = arr
        return x

    def v2(self, inputs: list[Any]) -> np.ndarray:
        """Open Inference Protocol inputs: one per feature (shape [n] or [n, 1], the datatype the metadata declares),
        or one [n, features] FP64 or INT64 tensor in spec order. Shapes, nesting and datatypes are checked before any
        value is read; every fault names its input."""
        k = len(self.names)
        if len(inputs) == 1 and inputs[0].name not in self.names and k > 1:
            t = inputs[0]
            shape = _shape(t)
            if len(shape) != 2 or shape[1] != k:
                raise _malformed(t.name, shape, f"a single tensor input needs shape [n, {k}] (features {self.names})")
            if t.datatype not in ("FP64", "INT64"):
                raise _malformed(t.name, t.datatype, "a single tensor input must be FP64 or INT64")
            self._rows(shape[0])
            flat = _typed(t, shape)
            cols = {name: flat[j::k] for j, name in enumerate(self.names)}
            n = shape[0]
        else:
            by_name: dict[str, Any] = {}
            for t in inputs:
                if t.name in by_name:
                    raise _malformed(t.name, None, "input given more than once")
                by_name[t.name] = t
            unknown = sorted(set(by_name) - set(self.names))
            missing = [f.name for f in self.spec.features if f.name not in by_name and not f.nullable]
            if unknown or missing:
                details: list[dict[str, Any]] = [
                    {"row": None, "field": u, "value": None, "rule": "unknown input"} for u in unknown
                ]
                details += [{"row": None, "field": m, "value": None, "rule": "is required"} for m in missing]
                raise RequestError("inputs do not match the model's features", details, status=422)
            cols, shapes = {}, {}
            for f in self.spec.features:
                t = by_name.get(f.name)
                if t is None:
                    continue
                declared = columns.v2_datatype(f)
                if t.datatype != declared:
                    raise _malformed(f.name, t.datatype, f"datatype must be {declared}, as the model's metadata says")
                shape = _shape(t)
                if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
                    raise _malformed(f.name, shape, "shape must be [n] or [n, 1]")
                self._rows(shape[0])
                cols[f.name], shapes[f.name] = _typed(t, shape), shape[0]
            if len(set(shapes.values())) > 1:
                details = [
                    {"row": None, "field": name, "value": n, "rule": "rows in this input"} for name, n in shapes.items()
                ]
                raise RequestError("inputs have different numbers of rows", details, status=400, reason="malformed")
            if not shapes:
                raise RequestError("no inputs given", status=400, reason="malformed")
            n = next(iter(shapes.values()))
        self._rows(n)
        x = np.full((n, k), np.nan)
        errors: list[dict[str, Any]] = []
        for j, f in enumerate(self.spec.features):
            col = cols.get(f.name)
            if col is None:
                continue
            for i, v in enumerate(col):
                x[i, j] = self._value(j, f, _from_tensor(f, v), i, errors)
        if errors:
            raise RequestError(f"{len(errors)} invalid value(s)", errors)
        return x


def _malformed(name: str, value: Any, rule: str) -> RequestError:
    return RequestError(
        f"input {name!r}: {rule}",
        [{"row": None, "field": name, "value": value, "rule": rule}],
        status=400,
        reason="malformed",
    )


def _shape(t: Any) -> list[int]:
    shape = t.shape
    if (
        not isinstance(shape, list | tuple)
        or not shape
        or not all(type(d) is int and 0 <= d <= INT64[1] for d in shape)
    ):
        raise _malformed(t.name, str(shape)[:100], "shape must be a non-empty list of non-negative integers")
    return list(shape)


def _flatten(data: Any, shape: list[int]) -> list[Any] | None:
    """`data` flat with prod(shape) values, or nested exactly as `shape`; None when it is neither."""
    if not isinstance(data, list):
        return None
    if not any(isinstance(v, list) for v in data):
        return data if len(data) == math.prod(shape) else None
    return _nested(data, shape)


def _nested(data: Any, shape: list[int]) -> list[Any] | None:
    if not shape:
        return None if isinstance(data, list) else [data]
    if not isinstance(data, list) or len(data) != shape[0]:
        return None
    out: list[Any] = []
    for part in data:
        flat = _nested(part, shape[1:])
        if flat is None:
            return None
        out += flat
    return out


_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "INT64": ("whole numbers within 64 bits", lambda v: type(v) is int and INT64[0] <= v <= INT64[1]),
    "FP64": ("numbers", lambda v: type(v) in (int, float)),
    "BYTES": ("UTF-8 strings", lambda v: type(v) is str),
}


def _typed(t: Any, shape: list[int]) -> list[Any]:
    """The input's values, flat, each checked against its datatype (null stands for missing)."""
    flat = _flatten(t.data if not isinstance(t.data, np.ndarray) else t.data.tolist(), shape)
    if flat is None:
        count = len(t.data) if isinstance(t.data, list) else "?"
        raise _malformed(t.name, count, f"data must hold {math.prod(shape)} values, flat or nested as shape {shape}")
    what, ok = _KINDS[t.datatype]
    per_row = max(1, math.prod(shape[1:]))
    values = []
    for i, raw in enumerate(flat):
        v = raw
        if isinstance(raw, bytes):
            try:
                v = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _malformed(t.name, None, f"row {i // per_row} is not valid UTF-8") from None
        if v is not None and not ok(v):
            rule = f"{t.datatype} data must be {what}"
            raise RequestError(
                f"input {t.name!r}: {rule}",
                [{"row": i // per_row, "field": t.name, "value": show(v), "rule": rule}],
                status=400,
                reason="malformed",
            )
        values.append(v)
    return values


def _integral(v: Any) -> bool:
    return isinstance(v, float) and v.is_integer()


def _from_tensor(f: Feature, v: Any) -> Any:
    """Tensors carry floats: NaN stands for missing, and whole floats are fine for integers and int codes."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if (
        isinstance(v, float)
        and v.is_integer()
        and (f.type == "integer" or (f.values is not None and f.value_kind is int))
    ):
        return int(v)
    return v


def rows(x: np.ndarray, spec: DatasetSpec) -> list[dict[str, Any]]:
    """Decoded rows back as plain feature dicts (category values, None for missing), e.g. for the inference log."""
    out: list[dict[str, Any]] = [{} for _ in range(x.shape[0])]
    for j, f in enumerate(spec.features):
        for i, v in enumerate(x[:, j].tolist()):
            if math.isnan(v):
                out[i][f.name] = None
            elif f.values is not None:
                out[i][f.name] = f.values[int(v)]
            else:
                out[i][f.name] = int(v) if f.type == "integer" else v
    return out


def check_binary_v2(body: bytes, json_length: str | None) -> None:
    """A binary V2 request (JSON header + raw tensors) checked before KServe slices it: the header length, the
    JSON, and each input's `binary_data_size` against its shape and datatype, so no fault gets past as a 5xx."""
    header = "Inference-Header-Content-Length"
    if json_length is None or not json_length.isascii() or not json_length.isdigit():
        raise RequestError(
            f"binary V2 request: header {header} must be the JSON part's length in bytes",
            [{"row": None, "field": header, "value": json_length, "rule": "must be a non-negative integer"}],
            status=400,
            reason="malformed",
        )
    n = int(json_length)
    if n > len(body):
        raise RequestError(
            f"binary V2 request: {header} {n} is longer than the body ({len(body)} bytes)",
            status=400,
            reason="malformed",
        )
    try:
        head = orjson.loads(body[:n])
    except orjson.JSONDecodeError as exc:
        raise RequestError(
            f"binary V2 request: the JSON part is not JSON: {exc}", status=400, reason="malformed"
        ) from exc
    if not isinstance(head, dict) or not isinstance(head.get("inputs"), list):
        raise RequestError('binary V2 request: the JSON part needs an "inputs" list', status=400, reason="malformed")
    binary = 0
    for t in head["inputs"]:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not isinstance(t.get("datatype"), str):
            raise RequestError(
                'binary V2 request: every input needs a "name" and a "datatype"', status=400, reason="malformed"
            )
        size = (t.get("parameters") or {}).get("binary_data_size")
        if "data" in t or size is None:
            continue
        shape = _shape(SimpleNamespace(name=t["name"], shape=t.get("shape")))
        dtype = to_np_dtype(t["datatype"].upper())
        width = np.dtype(dtype).itemsize if dtype not in (None, np.object_) else None  # BYTES: variable
        if type(size) is not int or size < 0 or (width is not None and size != math.prod(shape) * width):
            expected = f"{math.prod(shape) * width} for shape {shape}" if width else "a byte count"
            raise _malformed(t["name"], show(size), f"binary_data_size must be {expected} ({t['datatype']})")
        binary += size
    if binary != len(body) - n:
        raise RequestError(
            f"binary V2 request: inputs declare {binary} bytes of tensor data, the body carries {len(body) - n}",
            status=400,
            reason="malformed",
        )
