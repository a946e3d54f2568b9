"""Fetch the model to serve from the registry: resolve the alias, download the version's ChurnGuard files, build the
fast scorer and prove it on a smoke row before anything is swapped in. A version with a scorer file (GBM, logistic) is
served from it, without scikit-learn; any other is served from its pipeline, loaded with skops."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import tempfile
from dataclasses import dataclass
from itertools import takewhile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import yaml

from contract import artifacts, reference
from contract.reference import RangeCheck
from contract.scoring import Scorer
from contract.spec import DatasetSpec
from predictor.decode import Decoder
from predictor.registry import Registry, RegistryError

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
    outside: RangeCheck
    """The check of those ranges, per row."""


def resolve(registry: Registry, uri: str) -> tuple[str, str]:
    """(registered name, version) that `uri` points at right now."""
    if m := _ALIAS.match(uri):
        found = registry.by_alias(m["name"], m["alias"])
        if found is None:
            raise RegistryError(f"{uri}: no such model or alias in the registry", "RESOURCE_DOES_NOT_EXIST")
        return m["name"], found.version
    if m := _VERSION.match(uri):
        return m["name"], m["version"]
    raise ValueError(f"model URI must be models:/<name>@<alias> or models:/<name>/<version>, got {uri!r}")


def challenger(registry: Registry, name: str) -> str | None:
    """The version the `challenger` alias names, or None when the alias (or the model) does not exist."""
    found = registry.by_alias(name, "challenger")
    return found.version if found else None


def load(registry: Registry, name: str, version: str, *, max_rows: int) -> Served:
    """Download and check one registered version. Raises LoadError with the reason."""
    run_id = registry.version(name, version).run_id
    with tempfile.TemporaryDirectory(prefix="churnguard-model-") as tmp:
        try:
            members = [artifacts.member(f) for f in artifacts.SERVED]
            folder = registry.files(name, version, members, Path(tmp))
            files = artifacts.read(folder)
            spec, info, ref = files.spec, files.info, files.reference
            pipeline = None
            if files.scorer is not None:
                scorer = Scorer.from_file(files.scorer)
            else:  # a family without a scorer file (or a version from before them): its pipeline, via skops
                whole = folder if (folder / "MLmodel").exists() else registry.model(name, version, Path(tmp))
                pipeline = load_pipeline(whole)
                scorer = Scorer.from_pipeline(pipeline, spec)
        except RegistryError:
            raise  # the registry is unreachable: not this version's fault (the loader retries)
        except Exception as exc:  # any other failure here means "cannot serve this version"
            raise LoadError(f"{name} version {version}: {type(exc).__name__}: {exc}") from exc
    decoder = Decoder(spec, max_rows)
    _smoke(pipeline, scorer, decoder, spec, info, name, version)
    threshold = float(info["threshold"])
    ranges = reference.training_ranges(ref, spec)
    outside = RangeCheck.of(ranges, spec)
    return Served(name, version, run_id, spec, threshold, scorer, decoder, info, ref, ranges, outside)


def _smoke(
    pipeline: Any, scorer: Scorer, decoder: Decoder, spec: DatasetSpec, info: dict[str, Any], name: str, version: str
) -> None:
    """Score the logged presets through the fast path: they must agree exactly with the pipeline, or, served from
    a scorer file, with the probabilities training's pipeline gave them (recorded in info.json)."""
    presets = info.get("presets", [])
    rows = [p["features"] for p in presets]
    if not rows:
        raise LoadError(f"{name} version {version}: info.json has no presets to smoke-test with")
    try:
        fast = scorer.proba(decoder.v1({"instances": rows}))
        if pipeline is not None:
            import pandas as pd

            slow = pipeline.predict_proba(pd.DataFrame(rows, columns=spec.feature_names))[:, 1]
        else:
            slow = np.array([float(p["churn_probability"]) for p in presets])
    except Exception as exc:
        raise LoadError(f"{name} version {version}: smoke test raised {type(exc).__name__}: {exc}") from exc
    if not np.array_equal(fast, slow) or not np.all(np.isfinite(fast)):
        against = "the pipeline" if pipeline is not None else "the probabilities training recorded for them"
        raise LoadError(
            f"{name} version {version}: smoke test on the presets disagrees with {against} ({fast} vs {slow})"
        )


# -- the model file -------------------------------------------------------------------------------------------------
SKOPS_IGNORED_MODULES = {"tests", "externals", "setup", "conftest", "experimental", "estimator_checks"}
"""Module names scikit-learn's `all_estimators` skips (sklearn.utils.discovery._MODULE_TO_IGNORE)."""


def import_skops() -> ModuleType:
    """`skops.io`, imported without its import-time scan of scikit-learn. At import, skops lists every estimator
    class as trusted by default (`sklearn.utils.all_estimators()`, which imports every scikit-learn module, pytest
    among them: importing skops.io took 2.1 s with the scan and 0.6 s without, on this project's 2-core box).
    `load_pipeline` applies that same rule itself, to the few types the file holds; nothing else in the serving
    process imports skops. tests/unit/test_skops_trust.py fails loudly if skops stops reading `all_estimators` at
    import."""
    if (loaded := sys.modules.get("skops.io")) is not None:
        return loaded
    import sklearn.utils

    real = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda type_filter=None: []
    try:
        return importlib.import_module("skops.io")
    finally:
        sklearn.utils.all_estimators = real


def default_trusted(type_name: str) -> bool:
    """skops' default trust, for one type: a public, concrete scikit-learn estimator class, i.e. one that
    `sklearn.utils.all_estimators()` lists (found under its name in a public scikit-learn module)."""
    from sklearn.base import BaseEstimator

    module_name, _, name = type_name.rpartition(".")
    parts = module_name.split(".")
    if parts[0] != "sklearn" or name.startswith("_") or SKOPS_IGNORED_MODULES.intersection(parts):
        return False
    public = ".".join(takewhile(lambda part: not part.startswith("_"), parts))
    try:
        cls: Any = getattr(importlib.import_module(module_name), name)
        exported = getattr(importlib.import_module(public), name, None)
    except (ImportError, AttributeError):
        return False
    return (
        isinstance(cls, type)
        and issubclass(cls, BaseEstimator)
        and cls is not BaseEstimator
        and not inspect.isabstract(cls)
        and exported is cls
    )


def load_pipeline(model_folder: Path) -> Any:
    """The fitted pipeline of an MLflow sklearn model folder saved by training (skops format). Every type in the file
    must be one skops trusts by default (`default_trusted`) or one the MLmodel file lists from
    artifacts.TRUSTED_PACKAGES; anything else is refused before a single object is built."""
    skops_io = import_skops()
    conf = yaml.safe_load((model_folder / "MLmodel").read_text(encoding="utf-8"))["flavors"]["sklearn"]
    if conf.get("serialization_format") != "skops":
        raise LoadError(f"the model is saved as {conf.get('serialization_format')!r}; only skops files are served")
    path = model_folder / conf["pickled_model"]
    listed = {t for t in conf.get("skops_trusted_types") or [] if artifacts.vouchable(t)}
    found = skops_io.get_untrusted_types(file=path)
    refused = [t for t in found if t not in listed and not default_trusted(t)]
    if refused:
        raise LoadError(f"the model file holds types that are not trusted: {refused}")
    return skops_io.load(path, trusted=found)
