"""Fetch the model to serve from MLflow: resolve the alias, download the version with its ChurnGuard files, build
the fast scorer and prove it on a smoke row before anything is swapped in."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import skops.io  # noqa: F401  (the model format's loader: imported up front, so forked workers share it)
from mlflow import MlflowClient

from contract import artifacts, reference
from contract.spec import DatasetSpec
from predictor.decode import Decoder
from predictor.scoring import Scorer

_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)$")
_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


class LoadError(RuntimeError):
    """The version cannot be served (download, files, or smoke test failed)."""


@dataclass(frozen=True)
class Served:
    """Everything about the model being served; replaced whole on reload, never mutated."""

    name: str
    version: str
    run_id: str
    spec: DatasetSpec
    threshold: float
    scorer: Scorer
    decoder: Decoder
    info: dict[str, Any]
    reference: dict[str, Any]
    ranges: dict[str, dict[str, float]]
    """Training range of each numeric feature (`reference.training_ranges`): requests beyond it are flagged."""


def resolve(uri: str) -> tuple[str, str]:
    """(registered name, version) that `uri` points at right now."""
    if m := _ALIAS.match(uri):
        mv = MlflowClient().get_model_version_by_alias(m["name"], m["alias"])
        return m["name"], str(mv.version)
    if m := _VERSION.match(uri):
        return m["name"], m["version"]
    raise ValueError(f"model URI must be models:/<name>@<alias> or models:/<name>/<version>, got {uri!r}")


def load(name: str, version: str, *, max_rows: int) -> Served:
    """Download and check one registered version. Raises LoadError with the reason."""
    client = MlflowClient()
    mv = client.get_model_version(name, version)
    with tempfile.TemporaryDirectory(prefix="churnguard-model-") as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=tmp))
            files = artifacts.read(local)
            spec, info, ref = files.spec, files.info, files.reference
            pipeline = mlflow.sklearn.load_model(str(local))
            scorer = Scorer.from_pipeline(pipeline, spec)
        except Exception as exc:  # any failure here means "cannot serve this version"
            raise LoadError(f"{name} version {version}: {type(exc).__name__}: {exc}") from exc
    decoder = Decoder(spec, max_rows)
    _smoke(pipeline, scorer, decoder, spec, info, name, version)
    threshold = float(info["threshold"])
    ranges = reference.training_ranges(ref, spec)
    return Served(name, version, str(mv.run_id), spec, threshold, scorer, decoder, info, ref, ranges)


def _smoke(
    pipeline: Any, scorer: Scorer, decoder: Decoder, spec: DatasetSpec, info: dict[str, Any], name: str, version: str
) -> None:
    """Score the logged presets through the fast path and the pipeline; they must agree exactly."""
    rows = [p["features"] for p in info.get("presets", [])]
    if not rows:
        raise LoadError(f"{name} version {version}: info.json has no presets to smoke-test with")
    try:
        fast = scorer.proba(decoder.v1({"instances": rows}))
        slow = pipeline.predict_proba(pd.DataFrame(rows, columns=spec.feature_names))[:, 1]
    except Exception as exc:
        raise LoadError(f"{name} version {version}: smoke test raised {type(exc).__name__}: {exc}") from exc
    if not np.array_equal(fast, slow) or not np.all(np.isfinite(fast)):
        raise LoadError(f"{name} version {version}: smoke test disagrees with the pipeline ({fast} vs {slow})")
