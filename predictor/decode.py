"""Request decoding: V1 instances and V2 inputs, checked against the spec, straight to a NumPy array."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.spec import DatasetSpec, Feature

MAX_DETAILS = 50
"""Errors listed per response; the count says how many there were in all."""


FAST_MIN_ROWS = 8
"""Below this many instances the row-by-row decoder is faster than the vectorised pass."""


@dataclass
class RequestError(Exception):
    """A client error: HTTP `status`, a message, and one detail per broken rule (field, value, rule, row)."""

    message: str
    details: list[dict[str, Any]] = field(default_factory=list)
    status: int = 422
    reason: str = "validation"
    """Bounded label for the errors metric: validation, too_many_rows, malformed, too_large."""

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "details": self.details[:MAX_DETAILS], "error_count": len(self.details)}


def _show(value: Any) -> Any:
    """A value as it may be echoed back: JSON scalars as they are, anything else shortened to text."""
    if value is None or isinstance(value, bool | int | str):
        return value if not isinstance(value, str) else value[:100]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return type(value).__name__


class Decoder:
    """Checks values against the spec and encodes them as the model's fast path expects."""

    def __init__(self, spec: DatasetSpec, max_rows: int) -> None:
        self.spec = spec
        self.max_rows = max_rows
        self.names = spec.feature_names
        self._codes = [
            {v: float(i) for i, v in enumerate(f.values)} if f.values is not None else None for f in spec.features
        ]

    def _value(self, j: int, f: Feature, v: Any, row: int, errors: list[dict[str, Any]]) -> float:
        def bad(rule: str) -> float:
            errors.append({"row": row, "field": f.name, "value": _show(v), "rule": rule})
            return math.nan

        if v is None:
            return math.nan if f.nullable else bad("is required")
        codes = self._codes[j]
        if codes is not None:
            if isinstance(v, bool) or (type(v) is not f.value_kind and not (f.value_kind is int and _integral(v))):
                return bad(f"must be one of {list(codes)}")
            code = codes.get(int(v) if f.value_kind is int else v)
            return code if code is not None else bad(f"must be one of {list(codes)}")
        if isinstance(v, bool) or not isinstance(v, int | float):
            return bad("must be a number")
        x = float(v)
        if not math.isfinite(x):
            return bad("must be finite")
        if f.type == "integer" and not x.is_integer():
            return bad("must be an integer")
        if f.min is not None and x < f.min:
            return bad(f"must be >= {f.min:g}")
        if f.max is not None and x > f.max:
            return bad(f"must be <= {f.max:g}")
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
                for name in sorted(set(inst) - set(self.names)):
                    errors.append({"row": i, "field": name, "value": _show(inst[name]), "rule": "unknown field"})
                for j, f in enumerate(self.spec.features):
                    if f.name not in inst and not f.nullable:
                        errors.append({"row": i, "field": f.name, "value": None, "rule": "is required"})
                        x[i, j] = math.nan
                    else:
                        x[i, j] = self._value(j, f, inst.get(f.name), i, errors)
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
                for j, f in enumerate(self.spec.features):
                    x[i, j] = self._value(j, f, inst[j], i, errors)
            else:
                errors.append({"row": i, "field": None, "value": _show(inst), "rule": "must be an object or array"})
        if errors:
            raise RequestError(f"{len(errors)} invalid value(s)", errors)
        return x

    def _v1_fast(self, instances: list[Any]) -> np.ndarray | None:
        """One vectorised pass for the common case: complete instances of plain values, all valid. Anything else
        (missing, extra, null, wrong type, out of bounds) returns None, and the row-by-row path names each fault."""
        k = len(self.names)
        try:
            if all(type(inst) is dict and len(inst) == k for inst in instances):
                columns = [[inst[name] for inst in instances] for name in self.names]
            elif all(type(inst) is list and len(inst) == k for inst in instances):
                columns = [list(c) for c in zip(*instances, strict=True)]
            else:
                return None
        except KeyError:
            return None
        x = np.empty((len(instances), k))
        for j, (f, col) in enumerate(zip(self.spec.features, columns, strict=True)):
            codes = self._codes[j]
            if codes is not None:
                kind = f.value_kind
                if not all(type(v) is kind for v in col):
                    return None
                mapped = [codes.get(v) for v in col]
                if None in mapped:
                    return None
                x[:, j] = mapped
                continue
            if not all(type(v) is int or type(v) is float for v in col):
                return None
            arr = np.asarray(col, dtype=np.float64)
            bad = ~np.isfinite(arr)
            if f.min is not None:
                bad |= arr < f.min
            if f.max is not None:
                bad |= arr > f.max
            if f.type == "integer":
                bad |= arr != np.floor(arr)
            if bad.any():
                return None
            x[:, j] = arr
        return x

    def v2(self, inputs: list[Any]) -> np.ndarray:
        """Open Inference Protocol inputs: one per feature (shape [n] or [n, 1]), or one [n, features] FP tensor
        in spec order."""
        if len(inputs) == 1 and len(inputs[0].shape) == 2 and inputs[0].shape[1] == len(self.names) > 1:
            t = inputs[0]
            if t.datatype not in ("FP32", "FP64", "INT32", "INT64"):
                raise RequestError(
                    f"a single tensor input must be numeric, got {t.datatype}", status=400, reason="malformed"
                )
            rows = np.asarray(t.as_numpy(), dtype=np.float64).reshape(t.shape).tolist()
            columns = {name: [r[j] for r in rows] for j, name in enumerate(self.names)}
            n = len(rows)
        else:
            by_name = {t.name: t for t in inputs}
            unknown = sorted(set(by_name) - set(self.names))
            missing = [f.name for f in self.spec.features if f.name not in by_name and not f.nullable]
            if unknown or missing:
                details = [{"row": None, "field": u, "value": None, "rule": "unknown input"} for u in unknown]
                details += [{"row": None, "field": m, "value": None, "rule": "is required"} for m in missing]
                raise RequestError("inputs do not match the model's features", details, status=422)
            columns = {}
            for name, t in by_name.items():
                data = t.data if isinstance(t.data, list) else t.as_numpy().tolist()
                columns[name] = [_plain(v) for v in np.asarray(data, dtype=object).reshape(-1).tolist()]
            lengths = {len(c) for c in columns.values()}
            if len(lengths) != 1:
                raise RequestError("inputs have different lengths", status=400, reason="malformed")
            n = lengths.pop()
        self._rows(n)
        x = np.full((n, len(self.names)), np.nan)
        errors: list[dict[str, Any]] = []
        for j, f in enumerate(self.spec.features):
            col = columns.get(f.name)
            if col is None:
                continue
            for i, v in enumerate(col):
                x[i, j] = self._value(j, f, _from_tensor(f, v), i, errors)
        if errors:
            raise RequestError(f"{len(errors)} invalid value(s)", errors)
        return x


def _integral(v: Any) -> bool:
    return isinstance(v, float) and v.is_integer()


def _plain(v: Any) -> Any:
    return v.decode() if isinstance(v, bytes) else v


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
