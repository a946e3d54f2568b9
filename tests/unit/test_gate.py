"""The gate is a pure function of configuration and results: each rule decides, each outcome is a reason."""

from __future__ import annotations

from training.gate import GateConfig, decide

CFG = GateConfig(min_f1=0.75, min_roc_auc=0.90, max_drop=0.01)
GOOD = {"roc_auc": 0.95, "f1": 0.80}
CV = {"roc_auc": 0.95, "f1": 0.82}


def test_passes_without_champion() -> None:
    d = decide(CFG, test=GOOD, cv=CV, champion_test=None)
    assert d.passed and "ok: no current champion to compare with" in d.reasons


def test_low_cv_f1_fails() -> None:
    d = decide(CFG, test=GOOD, cv={**CV, "f1": 0.70}, champion_test=None)
    assert not d.passed and d.reasons[0].startswith("FAIL: out-of-fold F1 0.700")


def test_low_test_auc_fails() -> None:
    d = decide(CFG, test={**GOOD, "roc_auc": 0.85}, cv=CV, champion_test=None)
    assert not d.passed and d.reasons[0].startswith("FAIL: test ROC AUC 0.850")


def test_drop_against_champion_fails_only_beyond_allowance() -> None:
    assert decide(CFG, test=GOOD, cv=CV, champion_test={"roc_auc": 0.955}).passed
    d = decide(CFG, test=GOOD, cv=CV, champion_test={"roc_auc": 0.97})
    assert not d.passed and "champion 0.970" in d.reasons[0]


def test_leakage_smell_is_a_warning() -> None:
    d = decide(CFG, test={**GOOD, "roc_auc": 0.99}, cv={**CV, "roc_auc": 0.93}, champion_test=None)
    assert d.passed and d.reasons[-1].startswith("warn: test ROC AUC 0.990 is far above")


BASELINE_WINS = {"roc_auc": 0.963, "f1": 0.84}
CANDIDATE = {"roc_auc": 0.955, "f1": 0.81}


def test_a_baseline_that_wins_is_a_warning_by_default() -> None:
    d = decide(CFG, test=CANDIDATE, cv=CV, champion_test=None, baseline_test=BASELINE_WINS, family="gbm")
    assert d.passed
    assert d.reasons[-1].startswith("warn: the logistic baseline beats the gbm candidate: test ROC AUC 0.955 vs")


def test_require_beat_baseline_fails_a_candidate_below_the_baseline_and_says_why() -> None:
    strict = GateConfig(min_f1=0.75, min_roc_auc=0.90, max_drop=0.01, require_beat_baseline=True)
    d = decide(strict, test=CANDIDATE, cv=CV, champion_test=None, baseline_test=BASELINE_WINS, family="hgb")
    assert not d.passed
    assert d.reasons[0] == (
        "FAIL: test ROC AUC 0.955 vs logistic baseline 0.963 on the same rows "
        "(the hgb candidate must not be below the baseline)"
    )
    ok = decide(strict, test=BASELINE_WINS, cv=CV, champion_test=None, baseline_test=CANDIDATE, family="hgb")
    assert ok.passed and any(r.startswith("ok: test ROC AUC 0.963 vs logistic baseline 0.955") for r in ok.reasons)
