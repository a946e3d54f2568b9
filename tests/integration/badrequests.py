"""Generated bad requests for the predictor, as a careless client or an attacker would send them: V1 and V2 JSON
with hostile values, shapes and datatypes, binary V2 with lying headers, gzip that is not gzip, raw garbage.

Deterministic (one seed), so a failure names a request that can be sent again."""

from __future__ import annotations

import gzip
import json
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from contract.spec import DatasetSpec

NASTY: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    40,
    10**6,
    2**63,
    2**70,
    -(2**70),
    1.5,
    1e308,
    -0.0,
    "",
    "0",
    "40",
    "４０",
    "٤٠",
    "4_0",
    "34\x00.16",
    "\ud800",
    "\u202e40",
    "a" * 5000,
    "Month-to-month",
    [],
    [1],
    [[40]],
    {},
    {"a": 1},
]
DATATYPES: list[Any] = ["BOOL", "INT8", "INT32", "INT64", "UINT8", "UINT64", "FP16", "FP32", "FP64", "BYTES"]
DATATYPES += ["FOO", "", "int64", 5, None]
SHAPES: list[Any] = [[1], [2], [0], [], [-1], [1, 1], [1, 5], [2, 5], [1, 1, 1], [2**70], ["1"], [1.5], "1", None]


@dataclass(frozen=True)
class BadRequest:
    kind: str
    path: str
    body: bytes
    headers: dict[str, str]

    def __str__(self) -> str:
        return f"{self.kind} {self.path} {self.headers} {self.body[:300]!r}"


def _json(obj: Any) -> bytes:
    # json, not orjson: it writes what a careless client would (NaN, big integers, lone surrogates as escapes)
    return json.dumps(obj).encode()


class Generator:
    def __init__(self, spec: DatasetSpec, model: str, seed: int = 20261202) -> None:
        self.spec = spec
        self.names = spec.feature_names
        self.rng = random.Random(seed)
        self.v1 = f"/v1/models/{model}:predict"
        self.v2 = f"/v2/models/{model}/infer"
        self.explain = f"/v1/models/{model}:explain"

    def value(self) -> Any:
        return self.rng.choice(NASTY)

    def good_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for f in self.spec.features:
            if f.values is not None:
                row[f.name] = self.rng.choice(f.values)
            else:
                lo, hi = f.min if f.min is not None else 0, f.max if f.max is not None else 100
                v = self.rng.uniform(lo, hi)
                row[f.name] = int(v) if f.type == "integer" else round(v, 2)
        return row

    def v1_body(self) -> Any:
        r = self.rng.random()
        if r < 0.05:
            return self.value()
        if r < 0.1:
            return {"instances": self.value()}
        if r < 0.15:
            return {"instances": [self.good_row()], self.rng.choice(["extra", "\ud800", "inputs"]): 1}
        rows: list[Any] = []
        for _ in range(self.rng.choice([1, 1, 2, 9, 20])):
            row = self.good_row()
            for _ in range(self.rng.randint(1, 3)):
                action = self.rng.random()
                name = self.rng.choice(self.names)
                if action < 0.6:
                    row[name] = self.value()
                elif action < 0.75:
                    row.pop(name, None)
                else:
                    row[self.rng.choice(["colour", " age", "\ud800", "AGE", name + "\x00"])] = self.value()
            if self.rng.random() < 0.15:
                rows.append([row.get(n) for n in self.names][: self.rng.choice([len(self.names), 2])])
            else:
                rows.append(row)
        return {"instances": rows}

    def v2_input(self, name: str) -> dict[str, Any]:
        f = self.spec.feature(name) if name in self.names else None
        good_type = "FP64" if f is not None and f.type == "float" else "INT64"
        n = self.rng.choice([1, 1, 2, 3])
        t: dict[str, Any] = {
            "name": name,
            "shape": [n],
            "datatype": good_type,
            "data": [self.good_row()[f.name] if f else 1 for _ in range(n)],
        }
        r = self.rng.random()
        if r < 0.25:
            t["shape"] = self.rng.choice(SHAPES)
        elif r < 0.45:
            t["datatype"] = self.rng.choice(DATATYPES)
        elif r < 0.7:
            t["data"][self.rng.randrange(n)] = self.value()
        elif r < 0.8:
            t["data"] = self.rng.choice([[[v] for v in t["data"]], [t["data"]], self.value(), [self.value()] * 7])
        elif r < 0.9:
            t.pop(self.rng.choice(["name", "shape", "datatype", "data"]))
        return t

    def v2_body(self) -> Any:
        r = self.rng.random()
        if r < 0.05:
            return self.value()
        if r < 0.15:  # one [n, features] tensor
            n = self.rng.choice([1, 2])
            data: list[Any] = [v for _ in range(n) for v in self.good_row().values()]
            data[self.rng.randrange(len(data))] = self.value()
            shape = self.rng.choice([[n, len(self.names)], [n, len(self.names) + 1], [n * len(self.names)], [1, 5, 1]])
            return {"inputs": [{"name": "x", "shape": shape, "datatype": self.rng.choice(DATATYPES), "data": data}]}
        names = list(self.names)
        if self.rng.random() < 0.3:
            names.append(self.rng.choice([*self.names, "colour", "\ud800", ""]))
        if self.rng.random() < 0.2:
            names.remove(self.rng.choice(self.names))
        body: dict[str, Any] = {"inputs": [self.v2_input(n) for n in names]}
        if self.rng.random() < 0.1:
            body["id"] = self.value()
        if self.rng.random() < 0.1:
            body["parameters"] = self.value()
        return body

    def binary_v2(self) -> BadRequest:
        n = self.rng.choice([1, 2])
        inputs, raw = [], b""
        for f in self.spec.features:
            values = [self.good_row()[f.name] for _ in range(n)]
            fmt = "d" if f.type == "float" else "q"
            blob = struct.pack(f"<{n}{fmt}", *values)
            inputs.append({"name": f.name, "shape": [n], "datatype": "FP64" if fmt == "d" else "INT64"})
            inputs[-1]["parameters"] = {"binary_data_size": len(blob)}
            raw += blob
        r = self.rng.random()
        if r < 0.2:
            inputs[self.rng.randrange(len(inputs))]["parameters"]["binary_data_size"] = self.rng.choice(
                [0, 1, 7, 9, 10**9, -8, "8", None, 2**70]
            )
        elif r < 0.35:
            inputs[self.rng.randrange(len(inputs))]["shape"] = self.rng.choice(SHAPES)
        elif r < 0.5:
            inputs[self.rng.randrange(len(inputs))]["datatype"] = self.rng.choice(DATATYPES)
        elif r < 0.6:
            raw = raw[: self.rng.randrange(len(raw))]
        elif r < 0.7:
            raw += bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 16)))
        elif r < 0.8:
            inputs[0] = {**inputs[0], "datatype": "BYTES", "parameters": {"binary_data_size": 9}}
            raw = struct.pack("<I", 5) + b"\xff\xfe\xfd\xfc\xfb" + raw[9:]
        head = _json({"inputs": inputs})
        length: Any = len(head)
        if self.rng.random() < 0.2:
            length = self.rng.choice(["abc", "-1", "", "\xb9\xb2", str(len(head) + 10**6), str(len(head) - 3), "0"])
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(length)}
        return BadRequest("binary-v2", self.v2, head + raw, headers)

    def raw(self) -> BadRequest:
        path = self.rng.choice([self.v1, self.v2, self.explain])
        r = self.rng.random()
        if r < 0.3:
            body = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(0, 512)))
            headers = {"Content-Type": "application/json"}
        elif r < 0.5:
            body = _json(self.v1_body())[: self.rng.randint(0, 40)]  # cut short
            headers = {"Content-Type": "application/json"}
        elif r < 0.7:
            body = _json(self.v1_body() if path != self.v2 else self.v2_body())
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}  # says gzip, is not
        elif r < 0.85:
            body = gzip.compress(_json(self.v1_body() if path != self.v2 else self.v2_body()))
            headers = {"Content-Type": "application/json", "Content-Encoding": self.rng.choice(["gzip", "br", "zstd"])}
        else:
            body = gzip.compress(b"[" * 100_000)[: self.rng.randint(10, 200)]  # truncated gzip
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return BadRequest("raw", path, body, headers)

    def __iter__(self) -> Iterator[BadRequest]:
        while True:
            r = self.rng.random()
            if r < 0.35:
                path = self.rng.choice([self.v1, self.v1, self.explain])
                yield BadRequest("v1", path, _json(self.v1_body()), {"Content-Type": "application/json"})
            elif r < 0.7:
                yield BadRequest("v2", self.v2, _json(self.v2_body()), {"Content-Type": "application/json"})
            elif r < 0.85:
                yield self.binary_v2()
            else:
                yield self.raw()
