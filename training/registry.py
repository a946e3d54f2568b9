"""Registry adapter: the only module that talks to MLflow (tracking, model registry, the champion alias)."""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.types.schema import ColSpec, Schema, TensorSpec
from sklearn.pipeline import Pipeline

from contract import artifacts, columns
from contract.spec import DatasetSpec, Feature

CHAMPION = "champion"
GATE_PASSED = "gate_passed"
"""Version tag: "true" when the version passed the gate at registration (the only versions rollback goes to)."""
LOCK_SUFFIX = ".promotion-lock"
"""The promotion lock of model `m` is a registered model named `m.promotion-lock` (see `promotion_lock`)."""
LOCK_TTL_SECONDS = 300.0
"""A lock held longer than this is stale (its holder died): it is broken. A promotion holds it for seconds."""
LOCK_WAIT_SECONDS = 120.0
"""How long a promotion or rollback waits for the lock before giving up (nothing changed)."""
MODEL_REQUIREMENTS = ("mlflow", "scikit-learn", "numpy", "scipy", "pandas", "skops")
"""What loading the logged pipeline needs (pinned to the versions that trained it)."""
ARTIFACTS = "churnguard"
"""Folder of the run's own copy of the version's files (contract/artifacts.py: the model folder holds them too)."""


class RegistryUnavailableError(RuntimeError):
    """The tracking server does not answer."""


class PromotionLockTimeoutError(RuntimeError):
    """Another promotion or rollback held the lock for longer than we would wait."""


class RollbackRefusedError(ValueError):
    """The rollback or promotion target did not pass the gate (and --force was not given), or the aliases moved."""


log = logging.getLogger(__name__)


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
    return ColSpec(columns.mlflow_type(f), f.name, required=not f.nullable)


def signature(spec: DatasetSpec) -> ModelSignature:
    """Input columns from the spec; output is predict_proba's (rows, 2) matrix."""
    import numpy as np

    return ModelSignature(
        inputs=Schema([_colspec(f) for f in spec.features]),
        outputs=Schema([TensorSpec(np.dtype("float64"), (-1, 2))]),
    )


def _is(exc: MlflowException, *codes: int) -> bool:
    return exc.error_code in {ErrorCode.Name(c) for c in codes}


def champion(name: str) -> ModelVersion | None:
    """The version the alias points at; None when the model or the alias does not exist. Any other error (the
    server failing) is raised: read as "no champion", it would let a candidate promote itself ungated."""
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if _is(exc, RESOURCE_DOES_NOT_EXIST, INVALID_PARAMETER_VALUE):  # no such model / no such alias
            return None
        raise


def load_model(version: ModelVersion) -> Pipeline:
    model: Pipeline = mlflow.sklearn.load_model(f"models:/{version.name}/{version.version}")
    return model


def _extra_file(version: ModelVersion, name: str, dst: str) -> Path:
    uri = f"models:/{version.name}/{version.version}/{artifacts.member(name)}"
    return Path(mlflow.artifacts.download_artifacts(uri, dst_path=dst))


def load_files(version: ModelVersion) -> dict[str, Any]:
    """The ChurnGuard files logged with a version: {"spec": DatasetSpec, "reference": {...}, "info": {...}}."""
    with tempfile.TemporaryDirectory() as tmp:
        return {
            "spec": DatasetSpec.from_yaml(_extra_file(version, artifacts.SPEC, tmp).read_text()),
            "reference": json.loads(_extra_file(version, artifacts.REFERENCE, tmp).read_text()),
            "info": json.loads(_extra_file(version, artifacts.INFO, tmp).read_text()),
        }


def reference_sample(version: ModelVersion) -> pd.DataFrame:
    """The training rows logged with a version, typed by its spec."""
    with tempfile.TemporaryDirectory() as tmp:
        return pd.read_csv(_extra_file(version, artifacts.REFERENCE_SAMPLE, tmp))


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
    trusted = trusted_types(pipeline)  # before the run: a refused pipeline leaves nothing behind
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
            skops_trusted_types=trusted,
            # Stated, not inferred: inference loads the model in a subprocess (~3 s of every run; bench/README.md).
            pip_requirements=[f"{p}=={metadata.version(p)}" for p in MODEL_REQUIREMENTS],
        )
        version = str(info.registered_model_version)
        client = MlflowClient()
        for key, value in tags.items():
            client.set_model_version_tag(spec.name, version, key, value)
        return Logged(run.info.run_id, version)


# -- moving the alias: only under the promotion lock ------------------------------------------------------------
@dataclass(frozen=True)
class _Holder:
    token: str
    since: float
    """When it was taken (epoch seconds, the holder's clock)."""

    @property
    def age(self) -> float:
        return time.time() - self.since


LOCK_HOLDER_TAG, LOCK_SINCE_TAG = "churnguard.lock.holder", "churnguard.lock.since"
"""Tags of the lock model: who holds it (host:pid:random) and since when (epoch seconds)."""


def _take(client: MlflowClient, lock: str, token: str) -> bool:
    """Create the lock model; False when it exists. The tags are written in the same transaction as the name."""
    try:
        client.create_registered_model(
            lock,
            tags={LOCK_HOLDER_TAG: token, LOCK_SINCE_TAG: repr(time.time())},
            description="ChurnGuard promotion lock: held while a promotion or rollback moves the alias (seconds); "
            f"deleted when it ends. Safe to delete when older than {LOCK_TTL_SECONDS:.0f} s.",
        )
        return True
    except MlflowException as exc:
        if _is(exc, RESOURCE_ALREADY_EXISTS):
            return False
        raise


def _holder(client: MlflowClient, lock: str) -> _Holder | None:
    try:
        model = client.get_registered_model(lock)
    except MlflowException as exc:
        if _is(exc, RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    since = model.tags.get(LOCK_SINCE_TAG)
    return _Holder(model.tags.get(LOCK_HOLDER_TAG, "?"), float(since) if since else model.creation_timestamp / 1000)


def _release(client: MlflowClient, lock: str, token: str) -> None:
    """Delete the lock if it is still ours (a lock held past the TTL may have been broken and taken by another)."""
    holder = _holder(client, lock)
    if holder is not None and holder.token == token:
        client.delete_registered_model(lock)
    else:
        log.warning("the promotion lock %s was no longer ours when released (held past the TTL?)", lock)


def _break_stale(client: MlflowClient, lock: str, stale: _Holder, token: str, ttl: float) -> bool:
    """Delete a stale lock; True if this call deleted it. Breaking is itself done under a lock (`<lock>.break`):
    without it, two waiters that both saw the stale lock could each delete it, the second one deleting the fresh
    lock the first had just taken."""
    breaker = f"{lock}.break"
    if not _take(client, breaker, token):
        other = _holder(client, breaker)
        if other is not None and other.age > ttl:  # a breaker that died while breaking (held for milliseconds)
            client.delete_registered_model(breaker)
        return False
    try:
        current = _holder(client, lock)
        if current is None or current.token != stale.token:
            return False
        log.warning("breaking the stale promotion lock %s, held by %s for %.0f s", lock, stale.token, stale.age)
        client.delete_registered_model(lock)
        return True
    finally:
        client.delete_registered_model(breaker)


@contextmanager
def promotion_lock(
    name: str, *, ttl: float = LOCK_TTL_SECONDS, wait: float = LOCK_WAIT_SECONDS, poll: float = 0.5
) -> Iterator[str]:
    """Hold the registry-wide promotion lock of model `name` (yields the holder token); raise
    PromotionLockTimeoutError after `wait` seconds.

    MLflow has no compare-and-set on aliases, so every alias move (promotion, rollback) happens under this lock,
    and a promotion re-reads the champion inside it. The lock is a registered model named `<name>.promotion-lock`:
    creating a registered model is atomic on the server (an INSERT on the primary key; a second create fails
    with RESOURCE_ALREADY_EXISTS), on any backend store, for every client of the server. Its tags say who holds it
    and since when (the holder's clock: clocks must agree to well within the TTL). A lock older than `ttl` is
    broken: its holder died. The lock is deleted when the block ends, whatever happened in it.
    """
    client = MlflowClient()
    lock = f"{name}{LOCK_SUFFIX}"
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline, waiting = time.monotonic() + wait, False
    while not _take(client, lock, token):
        holder = _holder(client, lock)
        if holder is None:
            continue  # released between our create and our read: try again at once
        if holder.token == token:
            break  # our create went through, and a retry of it (after a 5xx) found it
        if holder.age > ttl and _break_stale(client, lock, holder, token, ttl):
            continue
        if time.monotonic() >= deadline:
            raise PromotionLockTimeoutError(
                f"the promotion lock {lock!r} is held by {holder.token} (for {holder.age:.0f} s): waited {wait:.0f} s, "
                f"nothing changed. Another promotion or rollback is running; a lock older than {ttl:.0f} s is "
                "broken (or delete that registered model)"
            )
        if not waiting:
            log.warning("waiting for the promotion lock %s, held by %s", lock, holder.token)
            waiting = True
        time.sleep(poll)
    try:
        yield token
    finally:
        try:
            _release(client, lock, token)
        except MlflowException as exc:  # do not hide what happened in the block; the TTL frees it
            log.warning("could not release the promotion lock %s (%s); it is broken after %.0f s", lock, exc, ttl)


def trusted_types(pipeline: Pipeline) -> list[str]:
    """The types skops would refuse in `pipeline` (tree arrays, numpy dtypes an imputer keeps, ...), if all of them
    come from artifacts.TRUSTED_PACKAGES (the pipeline was built in this run, so those are vouched for); otherwise a
    clear error before anything is logged."""
    import skops.io

    found = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    foreign = [t for t in found if not artifacts.vouchable(t)]
    if foreign:
        raise ValueError(f"the pipeline holds types from outside {artifacts.TRUSTED_PACKAGES}: {foreign}")
    return sorted(found)


def promote(name: str, version: str) -> None:
    """Move the champion alias (call it under `promotion_lock`, after re-reading the champion); the version is
    tagged so rollback can find earlier champions."""
    client = MlflowClient()
    client.set_model_version_tag(name, version, "churnguard.promoted", "true")
    client.set_registered_model_alias(name, CHAMPION, version)


@dataclass(frozen=True)
class Moved:
    before: str | None
    after: str
    gate_passed: bool
    """False only when --force moved the alias to a version that did not pass the gate."""


def rollback(name: str, to: str | None = None, *, force: bool = False, wait: float = LOCK_WAIT_SECONDS) -> Moved:
    """Move the champion alias back to `to`, or to the latest earlier promoted version. Only to a version that
    passed the gate, unless `force`: raises RollbackRefusedError."""
    client = MlflowClient()
    with promotion_lock(name, wait=wait):
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
        target = client.get_model_version(name, to)  # raises a clear MlflowException when it does not exist
        passed = target.tags.get(GATE_PASSED) == "true"
        if not passed and not force:
            tag = target.tags.get(GATE_PASSED)
            raise RollbackRefusedError(
                f"version {to} of {name!r} did not pass the gate ({GATE_PASSED}="
                f"{'missing' if tag is None else repr(tag)}): 'champion' unchanged. "
                "--force moves the alias to it anyway"
            )
        if current is not None:
            client.set_model_version_tag(name, current.version, "churnguard.rolled_back", "true")
        client.set_registered_model_alias(name, CHAMPION, str(to))
    return Moved(current.version if current else None, str(to), passed)


CHALLENGER = "challenger"


def set_challenger(name: str, version: str) -> None:
    """Give `version` the challenger alias (the predictors score it in shadow); call it under `promotion_lock`."""
    MlflowClient().set_registered_model_alias(name, CHALLENGER, version)


def challenger(name: str) -> ModelVersion | None:
    """The version the challenger alias points at; None when the model or the alias does not exist."""
    try:
        return MlflowClient().get_model_version_by_alias(name, CHALLENGER)
    except MlflowException as exc:
        if _is(exc, RESOURCE_DOES_NOT_EXIST, INVALID_PARAMETER_VALUE):
            return None
        raise


def promote_challenger(
    name: str, *, champion_was: str, challenger_was: str, force: bool = False, wait: float = LOCK_WAIT_SECONDS
) -> Moved:
    """Under the promotion lock, move `champion` to the challenger the evidence was about and remove the
    `challenger` alias. Refuse (RollbackRefusedError, nothing moved) when either alias moved since the evidence was
    read, or when the challenger did not pass the gate and not `force`."""
    client = MlflowClient()
    passed = client.get_model_version(name, challenger_was).tags.get(GATE_PASSED) == "true"
    if not passed and not force:
        raise RollbackRefusedError(
            f"version {challenger_was} of {name!r} did not pass the gate ({GATE_PASSED} is not 'true'); "
            "pass --force to promote it anyway"
        )
    with promotion_lock(name, wait=wait):
        current, shadow = champion(name), challenger(name)
        now = (current.version if current else None, shadow.version if shadow else None)
        if now != (champion_was, challenger_was):
            raise RollbackRefusedError(
                f"the aliases moved since the evidence was read (champion {now[0]}, challenger {now[1]}; the evidence "
                f"was about {champion_was} and {challenger_was}): nothing moved, run promote again"
            )
        promote(name, challenger_was)
        client.delete_registered_model_alias(name, CHALLENGER)
    return Moved(champion_was, challenger_was, gate_passed=passed)
