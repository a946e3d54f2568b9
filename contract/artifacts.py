"""The ChurnGuard files logged with each model version, inside its MLflow model folder (`extra_files/`, so the
predictor downloads them with the model): their names, the one writer and the one reader."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.spec import DatasetSpec

FOLDER = "extra_files"
"""Where MLflow's `log_model(extra_files=...)` puts them inside the model folder."""
SPEC, REFERENCE, REFERENCE_SAMPLE, INFO, EVAL_REPORT, SCORER = (
    "spec.yaml",
    "reference.json",
    "reference.csv",
    "info.json",
    "eval_report.json",
    "scorer.json",
)
SERVED = (SPEC, INFO, REFERENCE, SCORER)
"""The files a predictor downloads to serve a version (the scorer file only where the family has one)."""
TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy")
"""skops (MLflow's default format) refuses to load types it does not know unless the saver vouches for them
(`skops_trusted_types` in the MLmodel file). Training vouches only for types from these packages, and the predictor
trusts a listed type only if it comes from one of them: a model folder cannot whitelist anything else."""


def vouchable(type_name: str) -> bool:
    """Whether a skops type name (`package.module.Class`) comes from one of TRUSTED_PACKAGES."""
    return type_name.split(".", maxsplit=1)[0] in TRUSTED_PACKAGES


@dataclass(frozen=True)
class VersionFiles:
    """What serving needs of a version: its spec, its model card (info), its reference statistics and, for a
    family that has one, its scorer file."""

    spec: DatasetSpec
    info: dict[str, Any]
    reference: dict[str, Any]
    scorer: dict[str, Any] | None


def texts(
    *,
    spec: DatasetSpec,
    reference: dict[str, Any],
    sample_csv: str,
    info: dict[str, Any],
    report: dict[str, Any],
    scorer: dict[str, Any] | None,
) -> dict[str, str]:
    """The files of a new version, by name, as the text they are logged with (`scorer`: the family's scorer file,
    contract.scoring.Scorer.to_file; None when it has none)."""
    files = {
        SPEC: spec.to_yaml(),
        REFERENCE: json.dumps(reference, indent=1),
        REFERENCE_SAMPLE: sample_csv,
        INFO: json.dumps(info, indent=1),
        EVAL_REPORT: json.dumps(report, indent=1),
    }
    if scorer is not None:
        files[SCORER] = json.dumps(scorer, separators=(",", ":"), allow_nan=False)
    return files


def member(name: str) -> str:
    """A file's path inside the model folder (e.g. for `models:/<name>/<version>/<member>`)."""
    return f"{FOLDER}/{name}"


def read(model_folder: Path) -> VersionFiles:
    """The files of a downloaded model folder (raises if one is missing or unreadable)."""
    folder = model_folder / FOLDER
    scorer = folder / SCORER
    return VersionFiles(
        spec=DatasetSpec.from_yaml((folder / SPEC).read_text(encoding="utf-8")),
        info=json.loads((folder / INFO).read_text(encoding="utf-8")),
        reference=json.loads((folder / REFERENCE).read_text(encoding="utf-8")),
        scorer=json.loads(scorer.read_text(encoding="utf-8")) if scorer.exists() else None,
    )
