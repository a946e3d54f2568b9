"""Honest model choice on the committed data (in-process, no MLflow): every family trains, reports itself and
serves; auto reports every family; the baseline beating the candidate is said plainly and can fail the gate; hgb
honours a monotonic constraint as a guarantee."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from contract.scoring import Scorer
from contract.spec import DatasetSpec
from predictor import champion
from predictor.decode import Decoder
from tests.conftest import DATA_PATH
from training import cli, pipeline
from training.settings import TrainSettings
from training.validate import validate_file

FAMILIES = ("gbm", "hgb", "logistic", "auto")


def settings(**kw: object) -> TrainSettings:
    return TrainSettings(_env_file=None, bootstrap_rounds=200, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained(spec: DatasetSpec) -> dict[str, pipeline.Candidate]:
    valid = validate_file(DATA_PATH, spec)
    out = {}
    for family in FAMILIES:
        s = settings(model_family=family)
        out[family] = pipeline.assess(pipeline.fit(valid, spec, "test", s), s)
    return out


def gated(c: pipeline.Candidate, s: TrainSettings, monkeypatch: pytest.MonkeyPatch) -> pipeline.Candidate:
    """The gate stage as `run` calls it, with no champion in a registry."""
    monkeypatch.setattr(pipeline, "champion_metrics", lambda _c: (None, None))
    return pipeline.decide(c, s)


def test_each_family_is_the_one_trained_and_says_so(trained: dict[str, pipeline.Candidate]) -> None:
    for family in ("gbm", "hgb", "logistic"):
        c = trained[family]
        assert c.trained.family == family
        assert (
            type(c.trained.pipeline.named_steps["model"]).__name__
            == {
                "gbm": "GradientBoostingClassifier",
                "hgb": "HistGradientBoostingClassifier",
                "logistic": "LogisticRegression",
            }[family]
        )
        assert list(c.trained.candidates) == [family]
        report, info = pipeline.eval_report(c), pipeline.info(c)
        for card in (report, info):
            assert card["model_family"] == family
            assert card["candidates"][family]["cv_roc_auc"] == c.trained.cv["roc_auc"]
        json.dumps(info)  # what info.json is written from


def test_auto_picks_the_best_out_of_fold_roc_auc_and_reports_every_family(
    trained: dict[str, pipeline.Candidate],
) -> None:
    c = trained["auto"]
    scores = {f: v["cv_roc_auc"] for f, v in c.trained.candidates.items()}
    print("out-of-fold ROC AUC per family:", scores)
    assert list(scores) == ["logistic", "gbm", "hgb"]
    for family in ("gbm", "hgb", "logistic"):  # the same folds and grids as when the family is chosen alone
        assert scores[family] == trained[family].trained.cv["roc_auc"]
    assert c.trained.family == "logistic"  # the synthetic data come from a logistic model: it wins outright
    assert scores["logistic"] > max(scores["gbm"], scores["hgb"]) + 0.002
    assert pipeline.eval_report(c)["candidates"] == pipeline.info(c)["candidates"] == c.trained.candidates
    assert np.array_equal(
        c.trained.pipeline.predict_proba(c.split.test[c.spec.feature_names]),
        trained["logistic"].trained.pipeline.predict_proba(c.split.test[c.spec.feature_names]),
    )


def test_the_baseline_beating_the_gbm_is_said_plainly_everywhere(
    trained: dict[str, pipeline.Candidate], monkeypatch: pytest.MonkeyPatch
) -> None:
    c = trained["gbm"]
    sentence = "the logistic baseline beats the gbm candidate on test ROC AUC (0.963 vs 0.955)"
    assert c.report["baseline_beats_candidate"] is True
    assert c.report["baseline_comparison"] == sentence
    for card in (pipeline.eval_report(c), pipeline.info(c)):
        assert card["baseline_beats_candidate"] is True and card["baseline_comparison"] == sentence
    with cli.console.capture() as shown:
        cli._show_report(c)
    assert sentence in shown.get()
    c = gated(c, settings(), monkeypatch)  # the default gate: a warning, the run still passes
    assert c.decision is not None and c.decision.passed
    with cli.console.capture() as shown:
        cli._show_gate(c)
    assert "warn: the logistic baseline beats the gbm candidate: test ROC AUC 0.955 vs logistic baseline 0.963" in (
        shown.get()
    )


def test_require_beat_baseline_fails_the_gbm_and_says_why(
    trained: dict[str, pipeline.Candidate], monkeypatch: pytest.MonkeyPatch
) -> None:
    c = gated(trained["gbm"], settings(gate_require_beat_baseline=True), monkeypatch)
    assert c.decision is not None and not c.decision.passed
    why = (
        "FAIL: test ROC AUC 0.955 vs logistic baseline 0.963 on the same rows "
        "(the gbm candidate must not be below the baseline)"
    )
    assert c.decision.reasons[0] == why
    assert pipeline.eval_report(c)["gate"]["reasons"][0] == why
    with cli.console.capture() as shown:
        cli._show_gate(c)
    assert "gate FAILED" in shown.get() and why in shown.get()
    passed = gated(trained["logistic"], settings(gate_require_beat_baseline=True), monkeypatch)
    assert passed.decision is not None and passed.decision.passed  # the tuned logistic does beat it


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_passes_the_predictors_load_check_and_explains(
    trained: dict[str, pipeline.Candidate], family: str
) -> None:
    """What the predictor does at load (champion._smoke: the presets scored by the Scorer and the pipeline must
    agree exactly), then explanations that add up to the raw score."""
    c = trained[family]
    info = pipeline.info(c)
    scorer = Scorer.from_pipeline(c.trained.pipeline, c.spec)
    decoder = Decoder(c.spec, 1000)
    champion._smoke(c.trained.pipeline, scorer, decoder, c.spec, info, c.spec.name, "1")
    rows = c.split.test[c.spec.feature_names].head(50)
    base, phi = scorer.explain(decoder.v1({"instances": rows.to_dict("records")}))
    raw = c.trained.pipeline.decision_function(rows)
    np.testing.assert_allclose(base + phi.sum(axis=1), raw, rtol=0, atol=1e-9)


def test_hgb_never_lowers_risk_when_tickets_rise_under_a_monotonic_constraint(spec: DatasetSpec) -> None:
    """A guarantee, not a tendency: with `num_tickets: increasing`, over random customers from the whole spec range
    and every ticket count, one more ticket never lowers the probability (not even by 1e-16). Without the
    constraint the same model family does lower it for some customers, so the check has teeth."""
    mono = DatasetSpec.from_yaml(
        spec.to_yaml().replace("name: num_tickets", "name: num_tickets\n  monotonic: increasing")
    )
    rng = np.random.default_rng(0)
    n = 2000
    customers = pd.DataFrame(
        {
            "age": rng.integers(18, 101, n),
            "tenure_months": rng.integers(0, 121, n),
            "monthly_charges": rng.uniform(0, 500, n).round(2),
            "contract_type": rng.integers(0, 3, n),
            "num_tickets": 0,
        }
    )
    drops = {}
    for name, the_spec in (("constrained", mono), ("free", spec)):
        s = settings(model_family="hgb", grid={"max_leaf_nodes": [16], "learning_rate": [0.1]})
        c = pipeline.fit(validate_file(DATA_PATH, the_spec), the_spec, "test", s)
        assert c.trained.warnings == []
        model = c.trained.pipeline
        proba = np.stack([model.predict_proba(customers.assign(num_tickets=t))[:, 1] for t in range(51)], axis=1)
        drops[name] = int((np.diff(proba, axis=1) < 0).any(axis=1).sum())
    print("customers whose risk falls somewhere as tickets rise:", drops)
    assert drops["constrained"] == 0
    assert drops["free"] > 0


def test_a_family_that_ignores_the_constraint_warns_in_the_report(spec: DatasetSpec) -> None:
    mono = DatasetSpec.from_yaml(
        spec.to_yaml().replace("name: num_tickets", "name: num_tickets\n  monotonic: increasing")
    )
    s = settings(model_family="gbm", grid={"n_estimators": [50], "max_depth": [2]})
    c = pipeline.assess(pipeline.fit(validate_file(DATA_PATH, mono), mono, "test", s), s)
    (warning,) = c.trained.warnings
    assert warning.startswith("the gbm family ignores the spec's monotonic constraints (num_tickets: increasing)")
    assert pipeline.eval_report(c)["model_warnings"] == pipeline.info(c)["model_warnings"] == [warning]
    with cli.console.capture() as shown:
        cli._show_report(c)
    assert "warning: the gbm family ignores" in shown.get()


@pytest.mark.parametrize("family", ["gbm", "hgb", "logistic"])
def test_every_family_survives_the_model_format_the_registry_logs(
    trained: dict[str, pipeline.Candidate], family: str
) -> None:
    """skops (MLflow's format here) loads only the types the registry vouches for: every family's pipeline must be
    vouched for, load back, and serve the same probabilities through the Scorer."""
    import skops.io

    from training import registry

    c = trained[family]
    loaded = skops.io.loads(skops.io.dumps(c.trained.pipeline), trusted=registry.trusted_types(c.trained.pipeline))
    rows = c.split.test[c.spec.feature_names]
    x = Decoder(c.spec, 1000).v1({"instances": rows.to_dict("records")})
    assert np.array_equal(Scorer.from_pipeline(loaded, c.spec).proba(x), c.trained.pipeline.predict_proba(rows)[:, 1])
