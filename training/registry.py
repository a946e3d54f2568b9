"""Registry adapter: the only module that talks to MLflow (tracking, model registry, the champion alias)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
import mlflow.sklearn
import pandas as pd
import requests
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, Schema, TensorSpec
from sklearn.pipeline import Pipeline

from training.spec import DatasetSpec, Feature

CHAMPION = "champion"
MODEL_REQUIREMENTS = ("mlflow", "scikit-learn", "numpy", "scipy", "pandas", "skops")
"""What loading the logged pipeline needs (pinned to the versions that trained it)."""
ARTIFACTS = "churnguard"
"""Files logged next to the model, inside its artifact folder (`extra_files/`), so the predictor gets them with
the model: spec.yaml, reference.json, info.json, eval_report.json."""


class RegistryUnavailableError(RuntimeError):
    """The tracking server does not answer."""


def connect(uri: str, *, home: Path | None = None, experiment: str, timeout: float = 3.0) -> str:
    """Point MLflow at `uri` and make sure it answers; return the experiment id. `home` (embedded store only)
    holds the sqlite file and the artifacts."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        try:
            requests.get(uri.rstrip("/") + "/health", timeout=timeout).raise_for_status()
        except requests.RequestException as exc:
            raise RegistryUnavailableError(
                f"MLflow tracking server {uri} did not answer within {timeout:.0f} s ({type(exc).__name__}). "
                "Start it, or unset MLFLOW_TRACKING_URI to use the embedded store."
            ) from exc
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        return str(found.experiment_id)
    location = (home / "artifacts").resolve().as_uri() if home is not None else None
    return str(mlflow.create_experiment(experiment, artifact_location=location))


def _colspec(f: Feature) -> ColSpec:
    if f.type == "float" or (f.type == "integer" and f.nullable):
        kind = "double"
    elif f.type == "integer" or f.value_kind is int:
        kind = "long"
    else:
        kind = "string"
    return ColSpec(kind, f.name, required=not f.nullable)


def signature(spec: DatasetSpec) -> ModelSignature:
    """Input columns from the spec; output is predict_proba's (rows, 2) matrix."""
    import numpy as np

    return ModelSignature(
        inputs=Schema([_colspec(f) for f in spec.features]),
        outputs=Schema([TensorSpec(np.dtype("float64"), (-1, 2))]),
    )


def champion(name: str) -> ModelVersion | None:
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def load_model(version: ModelVersion) -> Pipeline:
    model: Pipeline = mlflow.sklearn.load_model(f"models:/{version.name}/{version.version}")
    return model


def _extra_file(version: ModelVersion, name: str, dst: str) -> Path:
    uri = f"models:/{version.name}/{version.version}/extra_files/{name}"
    return Path(mlflow.artifacts.download_artifacts(uri, dst_path=dst))


def load_files(version: ModelVersion) -> dict[str, Any]:
    """The ChurnGuard files logged with a version: {"spec": DatasetSpec, "reference": {...}, "info": {...}}."""
    with tempfile.TemporaryDirectory() as tmp:
        return {
            "spec": DatasetSpec.from_yaml(_extra_file(version, "spec.yaml", tmp).read_text()),
            "reference": json.loads(_extra_file(version, "reference.json", tmp).read_text()),
            "info": json.loads(_extra_file(version, "info.json", tmp).read_text()),
        }


def reference_sample(version: ModelVersion) -> pd.DataFrame:
    """The training rows logged with a version, typed by its spec."""
    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_csv(_extra_file(version, "reference.csv", tmp))


def log_drift(experiment_id: str, columns: list[dict[str, Any]], share: float, files: list[Path]) -> str:
    """A run of its own (tag churnguard.kind=drift) with the per-feature statistics and the reports."""
    with mlflow.start_run(experiment_id=experiment_id, tags={"churnguard.kind": "drift"}) as run:
        mlflow.log_metric("drift_share", share)
        for c in columns:
            mlflow.log_metric(f"drift_p_value_{c['column']}", c["p_value"])
            mlflow.log_metric(f"drift_psi_{c['column']}", c["psi"])
        for f in files:
            mlflow.log_artifact(str(f), "drift")
        return str(run.info.run_id)


@dataclass(frozen=True)
class Logged:
    run_id: str
    version: str


def log_candidate(
    *,
    experiment_id: str,
    spec: DatasetSpec,
    pipeline: Pipeline,
    input_example: Any,
    params: dict[str, Any],
    metrics: dict[str, float],
    figures: dict[str, Figure],
    files: dict[str, str],
    tags: dict[str, str],
) -> Logged:
    """One MLflow run with everything about the candidate, and a new registry version (no alias moved)."""
    with mlflow.start_run(experiment_id=experiment_id, tags=tags) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        for fname, fig in figures.items():
            mlflow.log_figure(fig, f"plots/{fname}")
        paths = []
        for fname, text in files.items():
            path = Path(tmp) / fname
            path.write_text(text, encoding="utf-8")
            paths.append(str(path))
            mlflow.log_artifact(str(path), ARTIFACTS)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature(spec),
            input_example=input_example,
            registered_model_name=spec.name,
            pyfunc_predict_fn="predict_proba",
            extra_files=paths,
            # skops (MLflow's default format) asks to vouch for the tree arrays: we wrote them in this run.
            skops_trusted_types=["sklearn.tree._tree.Tree"],
            # Stated, not inferred: inference loads the model in a subprocess (~3 s of every run; bench/README.md).
            pip_requirements=[f"{p}=={metadata.version(p)}" for p in MODEL_REQUIREMENTS],
        )
        version = str(info.registered_model_version)
        client = MlflowClient()
        for key, value in tags.items():
            client.set_model_version_tag(spec.name, version, key, value)
        return Logged(run.info.run_id, version)


def promote(name: str, version: str) -> None:
    """Move the champion alias; the version is tagged so rollback can find earlier champions."""
    client = MlflowClient()
    client.set_model_version_tag(name, version, "churnguard.promoted", "true")
    client.set_registered_model_alias(name, CHAMPION, version)


def rollback(name: str, to: str | None = None) -> tuple[str | None, str]:
    """Move the champion alias back to `to`, or to the latest earlier promoted version. Returns (from, to)."""
    client = MlflowClient()
    current = champion(name)
    if to is None:
        earlier = [
            v
            for v in client.search_model_versions(f"name = '{name}'")
            if v.tags.get("churnguard.promoted") == "true"
            and (current is None or int(v.version) < int(current.version))
        ]
        if not earlier:
            raise ValueError(f"model {name!r} has no earlier champion to roll back to")
        to = max(earlier, key=lambda v: int(v.version)).version
    client.get_model_version(name, to)  # raises a clear MlflowException when it does not exist
    if current is not None:
        client.set_model_version_tag(name, current.version, "churnguard.rolled_back", "true")
    client.set_registered_model_alias(name, CHAMPION, to)
    return (current.version if current else None, str(to))
