"""The predictor's fast path and explanations against the sklearn pipeline they stand in for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from contract.spec import DatasetSpec
from predictor.decode import Decoder, rows
from predictor.scoring import Scorer
from training import model
from training.data import generate


@pytest.fixture(scope="module")
def fitted(spec: DatasetSpec) -> tuple[object, pd.DataFrame]:
    df = generate(600, seed=7)
    pipe = model.gbm(spec, seed=0).set_params(model__n_estimators=60, model__max_depth=3)
    pipe.fit(df[spec.feature_names], df["churn"])
    return pipe, df


def test_fast_path_equals_predict_proba_bit_for_bit(spec: DatasetSpec, fitted) -> None:
    pipe, df = fitted
    x = Decoder(spec, 10_000).v1({"instances": df[spec.feature_names].to_dict("records")})
    fast = Scorer.from_pipeline(pipe, spec).proba(x)
    assert np.array_equal(fast, pipe.predict_proba(df[spec.feature_names])[:, 1])


def test_nullable_features_are_imputed_like_the_pipeline(spec: DatasetSpec) -> None:
    nullable = DatasetSpec.from_yaml(
        spec.to_yaml().replace("name: monthly_charges", "name: monthly_charges\n  nullable: true")
    )
    df = generate(400, seed=3)
    df.loc[::7, "monthly_charges"] = np.nan
    pipe = model.gbm(nullable, seed=0).set_params(model__n_estimators=30).fit(df[nullable.feature_names], df["churn"])
    x = Decoder(nullable, 10_000).v1({"instances": rows(df[nullable.feature_names].to_numpy(float), nullable)})
    assert np.isnan(x[:, 2]).sum() == len(df.loc[::7])
    assert np.array_equal(
        Scorer.from_pipeline(pipe, nullable).proba(x), pipe.predict_proba(df[nullable.feature_names])[:, 1]
    )


def test_explanations_add_up_to_the_raw_score(spec: DatasetSpec, fitted) -> None:
    pipe, df = fitted
    scorer = Scorer.from_pipeline(pipe, spec)
    x = df[spec.feature_names].to_numpy(float)[:40]
    base, phi = scorer.explain(x)
    raw = pipe.decision_function(df[spec.feature_names].iloc[:40])
    np.testing.assert_allclose(base + phi.sum(axis=1), raw, atol=1e-9)


def test_explanations_of_an_additive_model_are_centred_effects(spec: DatasetSpec) -> None:
    """With stumps (depth 1) the model is a sum of one-feature functions, and exact Shapley values are each
    feature's function minus its cover-weighted mean: an independent check of the enumeration."""
    df = generate(500, seed=11)
    pipe = model.gbm(spec, seed=0).set_params(model__n_estimators=25, model__max_depth=1)
    pipe.fit(df[spec.feature_names], df["churn"])
    scorer = Scorer.from_pipeline(pipe, spec)
    x = df[spec.feature_names].to_numpy(float)[:20]
    _, phi = scorer.explain(x)
    gbm = pipe.named_steps["model"]
    expected = np.zeros_like(x)
    for est in gbm.estimators_[:, 0]:
        t = est.tree_
        f, thr, left, right = t.feature[0], t.threshold[0], t.children_left[0], t.children_right[0]
        vl, vr = t.value[left, 0, 0], t.value[right, 0, 0]
        mean = (
            t.weighted_n_node_samples[left] * vl + t.weighted_n_node_samples[right] * vr
        ) / t.weighted_n_node_samples[0]
        expected[:, f] += gbm.learning_rate * (np.where(x[:, f].astype(np.float32) <= thr, vl, vr) - mean)
    np.testing.assert_allclose(phi, expected, atol=1e-12)
