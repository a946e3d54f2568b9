"""Drift stage: Evidently data-drift report of current data against the training reference, plus PSI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from contract import reference
from contract.spec import DatasetSpec


@dataclass
class DriftResult:
    columns: list[dict[str, Any]]
    """Per feature: column, method, p_value, drifted, psi."""
    share: float
    """Share of features whose test says drifted."""
    max_share: float

    @property
    def drifted(self) -> bool:
        return self.share > self.max_share


def run(
    ref: pd.DataFrame,
    current: pd.DataFrame,
    spec: DatasetSpec,
    *,
    p_value: float,
    max_share: float,
    out_dir: Path,
) -> tuple[DriftResult, list[Path]]:
    """KS for numeric and chi-square for categorical features (pinned: Evidently's default changes with the
    reference size), the share of drifted features, and PSI on reference-quantile bins. Writes HTML + JSON."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[f.name for f in spec.numeric], categorical_columns=[f.name for f in spec.categorical]
    )
    names = spec.feature_names
    report = Report(
        [
            DataDriftPreset(
                columns=names, num_method="ks", cat_method="chisquare", threshold=p_value, drift_share=max_share
            )
        ],
        include_tests=True,
    )
    snapshot = report.run(
        current_data=Dataset.from_pandas(current[names], data_definition=definition),
        reference_data=Dataset.from_pandas(ref[names], data_definition=definition),
    )
    values: dict[str, float] = {}
    for m in snapshot.dict()["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            values[cfg["column"]] = float(m["value"])
    psis = reference.psi_frame(current, reference.stats(ref, spec), spec)
    columns = [
        {
            "column": f.name,
            "method": "chisquare" if f.type == "category" else "ks",
            "p_value": values[f.name],
            "drifted": values[f.name] < p_value,
            "psi": psis[f.name],
        }
        for f in spec.features
    ]
    share = sum(bool(c["drifted"]) for c in columns) / len(columns)
    out_dir.mkdir(parents=True, exist_ok=True)
    html, js = out_dir / "drift_report.html", out_dir / "drift_report.json"
    snapshot.save_html(str(html))
    snapshot.save_json(str(js))
    return DriftResult(columns, share, max_share), [html, js]
