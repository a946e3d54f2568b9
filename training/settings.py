"""Settings of the training CLI: one typed object, read from CHURN_* variables (and MLFLOW_TRACKING_URI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from training.gate import GateConfig
from training.model import DEFAULT_GRIDS, FAMILIES, Family, estimator_class

Grid = dict[str, list[Any]]


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
    model_family: Literal["gbm", "hgb", "logistic", "auto"] = "gbm"
    """gbm (GradientBoosting), hgb (HistGradientBoosting), logistic, or auto: tune all three and keep the best
    out-of-fold ROC AUC, near-ties (within `auto_tie_margin`) to the simpler family (logistic < gbm < hgb)."""
    grid: dict[str, Any] | None = None
    """Parameter grid of the chosen family (JSON in CHURN_GRID; unset: the family's default grid). With auto: a
    JSON object of family -> grid; families not named keep their default grid."""
    auto_tie_margin: float = Field(default=0.002, ge=0, le=0.1)
    """With auto: families within this out-of-fold ROC AUC of the best count as tied; the simplest of them wins."""
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
    alias: Literal["champion", "challenger"] = "champion"
    """The alias a version that passes the gate gets: champion (served at once), or challenger (scored in shadow
    beside the champion; `python -m training promote` moves champion to it on live evidence, docs/quality.md)."""
    gate_require_beat_baseline: bool = False
    """Fail the gate when the candidate's test ROC AUC is below the untuned logistic baseline's."""
    drift_share: float = Field(default=0.5, gt=0, le=1)
    """The drift command fails when more than this share of features drifted."""
    drift_p_value: float = Field(default=0.05, gt=0, lt=1)
    """A feature drifted when its KS / chi-square p-value is below this."""

    @model_validator(mode="after")
    def _grids_fit_their_families(self) -> TrainSettings:
        if self.grid is None:
            return self
        if self.model_family != "auto":
            _check_grid(self.model_family, self.grid, "grid")
            return self
        unknown = sorted(set(self.grid) - set(FAMILIES))
        if unknown:
            raise ValueError(
                f"with model_family auto, grid maps a family ({', '.join(FAMILIES)}) to its grid; "
                f"not families: {unknown}"
            )
        for family in FAMILIES:
            grid = self.grid.get(family, {})
            if not isinstance(grid, dict):
                raise ValueError(f"grid[{family!r}] must be a JSON object of parameter -> list of values")
            _check_grid(family, grid, f"grid[{family!r}]")
        return self

    @property
    def grids(self) -> dict[Family, Grid]:
        """Each family to tune, with its grid."""
        if self.model_family == "auto":
            given: dict[str, Any] = self.grid or {}
            return {f: dict(given.get(f, DEFAULT_GRIDS[f])) for f in FAMILIES}
        family = self.model_family
        return {family: dict(self.grid if self.grid is not None else DEFAULT_GRIDS[family])}

    @property
    def gate(self) -> GateConfig:
        return GateConfig(
            min_f1=self.gate_min_f1,
            min_roc_auc=self.gate_min_roc_auc,
            max_drop=self.gate_max_drop,
            require_beat_baseline=self.gate_require_beat_baseline,
        )

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def embedded(self) -> bool:
        return self.tracking_uri is None


def _check_grid(family: Family, grid: dict[str, Any], where: str) -> None:
    """Values are non-empty lists and keys are parameters of the family's estimator (a typo fails at start)."""
    bad = [k for k, v in grid.items() if not isinstance(v, list) or not v]
    if bad:
        raise ValueError(f"{where} values must be non-empty lists: {bad}")
    known = set(estimator_class(family)().get_params())
    unknown = sorted(set(grid) - known)
    if unknown:
        raise ValueError(
            f"{where}: not parameters of the {family} family's {estimator_class(family).__name__}: {unknown}"
        )
