"""Settings of the training CLI: one typed object, read from CHURN_* variables (and MLFLOW_TRACKING_URI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from training.gate import GateConfig

DEFAULT_GRID: dict[str, list[Any]] = {
    "n_estimators": [50, 100],
    "max_depth": [2, 3],
    "learning_rate": [0.05, 0.1],
    "subsample": [0.7],
}


class TrainSettings(BaseSettings):
    """Everything the pipeline can be told; each field also reads CHURN_<FIELD NAME>."""

    model_config = SettingsConfigDict(env_prefix="CHURN_", extra="ignore")

    tracking_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "CHURN_TRACKING_URI")
    )
    """MLflow tracking URI; unset means the embedded sqlite store under `home`."""
    home: Path = Path(".churnguard")
    """Working folder of the embedded MLflow store, reports and stage hand-offs."""
    experiment: str = "churnguard"
    """MLflow experiment that holds the training runs."""
    test_size: float = Field(default=0.2, gt=0, lt=1)
    """Share of rows held out for the test metrics and the gate."""
    seed: int = 42
    """Seed of the split, the folds, the model and the bootstrap."""
    cv_folds: int = Field(default=5, ge=2)
    """Folds of the grid search and of the out-of-fold threshold choice."""
    grid: dict[str, list[Any]] = Field(default_factory=lambda: dict(DEFAULT_GRID))
    """GradientBoostingClassifier parameter grid (JSON in CHURN_GRID)."""
    n_jobs: int = 2
    """Parallel fits of the grid search (2 measured fastest on 2 cores; see bench/train_bench.py)."""
    tune_max_rows: int = Field(default=20_000, ge=100)
    """Tune on a stratified sample of at most this many rows, then refit the winner on all of them."""
    bootstrap_rounds: int = Field(default=1000, ge=100)
    """Resamples behind the 95% confidence intervals of the test metrics."""
    gate_min_f1: float = Field(default=0.75, ge=0, le=1)
    """Least out-of-fold F1 at the tuned threshold for promotion."""
    gate_min_roc_auc: float = Field(default=0.90, ge=0, le=1)
    """Least test ROC AUC for promotion."""
    gate_max_drop: float = Field(default=0.01, ge=0, le=1)
    """Largest test ROC AUC loss against the current champion (same test rows) for promotion."""
    drift_share: float = Field(default=0.5, gt=0, le=1)
    """The drift command fails when more than this share of features drifted."""
    drift_p_value: float = Field(default=0.05, gt=0, lt=1)
    """A feature drifted when its KS / chi-square p-value is below this."""

    @field_validator("grid")
    @classmethod
    def _grid_lists(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        bad = [k for k, v in grid.items() if not isinstance(v, list) or not v]
        if bad:
            raise ValueError(f"grid values must be non-empty lists: {bad}")
        return grid

    @property
    def gate(self) -> GateConfig:
        return GateConfig(min_f1=self.gate_min_f1, min_roc_auc=self.gate_min_roc_auc, max_drop=self.gate_max_drop)

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def embedded(self) -> bool:
        return self.tracking_uri is None
