"""The inference log's record: one JSON line per served row, written by the predictor and read back (e.g. by the
drift report) with missing values still missing."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FILE_GLOB = "inference-*.jsonl*"
"""One file per serving process (`file_name`), rotated with numbered suffixes."""


def file_name(pid: int) -> str:
    return f"inference-{pid}.jsonl"


def line(ts: str, version: str, features: dict[str, Any], probability: float, churn: int, prediction_id: str) -> str:
    """One record: features as served (category values, null for missing), the model's answer and its id (what
    `python -m training feedback` sends back with the outcome)."""
    record = {"ts": ts, "model_version": version, "features": features, "churn_probability": probability}
    return json.dumps({**record, "churn": churn, "prediction_id": prediction_id})


def files(path: Path) -> list[Path]:
    """The log files under `path` (a folder), or `path` itself (a file)."""
    return sorted(path.glob(FILE_GLOB)) if path.is_dir() else [path]


def features(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The served features of each record, missing values as None."""
    out = []
    for text in lines:
        if text.strip():
            row = json.loads(text)["features"]
            out.append({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})
    return out
