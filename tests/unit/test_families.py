"""Model families as configuration: the settings, the choice among families, monotonic constraints, importances."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from contract.spec import DatasetSpec
from training import model
from training.data import generate
from training.settings import TrainSettings
from training.train import Tuned, choose


def settings(**env: str) -> TrainSettings:
    return TrainSettings(_env_file=None, **env)  # type: ignore[arg-type]


def test_gbm_is_the_default_family_with_its_grid() -> None:
    s = settings()
    assert s.model_family == "gbm"
    assert s.grids == {"gbm": model.DEFAULT_GRIDS["gbm"]}


def test_family_and_grid_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_MODEL_FAMILY", "hgb")
    monkeypatch.setenv("CHURN_GRID", '{"max_leaf_nodes": [4, 8]}')
    monkeypatch.setenv("CHURN_GATE_REQUIRE_BEAT_BASELINE", "true")
    s = TrainSettings(_env_file=None)  # type: ignore[call-arg]
    assert s.grids == {"hgb": {"max_leaf_nodes": [4, 8]}}
    assert s.gate.require_beat_baseline is True


def test_auto_tunes_every_family_simplest_first_and_takes_grids_per_family() -> None:
    s = settings(model_family="auto", grid={"logistic": {"C": [0.5]}})
    assert list(s.grids) == ["logistic", "gbm", "hgb"]
    assert s.grids["logistic"] == {"C": [0.5]}
    assert s.grids["hgb"] == model.DEFAULT_GRIDS["hgb"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"model_family": "forest"}, "model_family"),
        ({"model_family": "logistic", "grid": {"max_depth": [2]}}, "not parameters of the logistic family"),
        ({"grid": {"n_estimators": []}}, "non-empty lists"),
        ({"model_family": "auto", "grid": {"n_estimators": [50]}}, "not families: \\['n_estimators'\\]"),
        ({"model_family": "auto", "grid": {"hgb": {"max_depth": 3}}}, "non-empty lists"),
    ],
)
def test_invalid_family_settings_fail_at_start_with_the_reason(env: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**env)  # type: ignore[arg-type]


def tuned(family: model.Family, auc: float) -> Tuned:
    return Tuned(family, {}, np.zeros(1), auc)


def test_auto_keeps_the_best_out_of_fold_roc_auc() -> None:
    assert choose([tuned("logistic", 0.90), tuned("gbm", 0.95), tuned("hgb", 0.93)], tie_margin=0.002).family == "gbm"


def test_auto_breaks_near_ties_towards_the_simpler_family() -> None:
    near = [tuned("logistic", 0.9531), tuned("gbm", 0.9550), tuned("hgb", 0.9549)]
    assert choose(near, tie_margin=0.002).family == "logistic"
    assert choose(near, tie_margin=0.001).family == "gbm"
    assert choose([tuned("gbm", 0.9549), tuned("hgb", 0.9550)], tie_margin=0.002).family == "gbm"


MONO = DatasetSpec.from_yaml(
    """
name: mono
target: {name: churn, positive: 1}
features:
  - {name: age, type: integer, min: 18, max: 100}
  - {name: contract_type, type: category, values: [0, 1, 2]}
  - {name: tenure_months, type: integer, min: 0, max: 120, monotonic: decreasing}
  - {name: num_tickets, type: integer, min: 0, max: 50, monotonic: increasing}
"""
)


def test_monotonic_constraints_follow_the_prepare_steps_column_order() -> None:
    assert model.monotonic_cst(MONO) == [0, 0, -1, 1]
    clf = model.hgb(MONO, seed=0).named_steps["model"]
    assert clf.monotonic_cst == [0, 0, -1, 1]
    assert clf.categorical_features is None  # ordinal codes, split like numbers (see model.hgb)
    native = model.hgb(MONO, seed=0, native_categories=True).named_steps["model"]
    assert native.categorical_features == [False, True, False, False]


def test_families_that_cannot_constrain_say_so() -> None:
    assert model.ignored_constraints("hgb", MONO) == []
    for family in ("gbm", "logistic"):
        (warning,) = model.ignored_constraints(family, MONO)
        assert warning.startswith(f"the {family} family ignores the spec's monotonic constraints")
        assert "tenure_months: decreasing, num_tickets: increasing" in warning
    plain = DatasetSpec.from_yaml(
        MONO.to_yaml().replace("monotonic: decreasing", "").replace("monotonic: increasing", "")
    )
    assert model.ignored_constraints("gbm", plain) == []


@pytest.mark.parametrize("family", model.FAMILIES)
def test_every_family_has_importances_that_sum_to_one(spec: DatasetSpec, family: model.Family) -> None:
    df = generate(400, seed=4)
    x, y = df[spec.feature_names], df["churn"].to_numpy()
    pipe = model.build(family, spec, seed=0).fit(x, y)
    shares = model.importances(pipe, spec, x, y, seed=0)
    assert list(shares) == spec.feature_names
    assert min(shares.values()) >= 0 and sum(shares.values()) == pytest.approx(1)
    assert max(shares, key=shares.__getitem__) in {"contract_type", "num_tickets", "tenure_months"}


def test_logistic_importance_sums_absolute_weights_over_a_features_one_hot_columns(spec: DatasetSpec) -> None:
    df = generate(400, seed=4)
    x, y = df[spec.feature_names], df["churn"].to_numpy()
    pipe = model.logistic(spec, seed=0).fit(x, y)
    w = np.abs(pipe.named_steps["model"].coef_[0])  # columns: age, tenure, charges, contract x3, tickets
    shares = model.importances(pipe, spec, x, y, seed=0)
    assert shares["contract_type"] == pytest.approx(w[3:6].sum() / w.sum())
    assert shares["age"] == pytest.approx(w[0] / w.sum())
