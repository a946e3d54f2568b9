"""Gate stage: the promotion decision, a pure function of configuration and evaluation results."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GateConfig:
    min_f1: float
    """Least out-of-fold F1 at the tuned threshold (pooled over the CV folds: far steadier than test F1)."""
    min_roc_auc: float
    """Least held-out ROC AUC."""
    max_drop: float
    """Largest held-out ROC AUC loss allowed against the current champion scored on the same test rows."""
    leak_margin: float = 0.03
    """Held-out AUC this far above the cross-validated AUC is flagged as a leakage smell (warning only)."""
    require_beat_baseline: bool = False
    """Fail when the candidate's held-out ROC AUC is below the (untuned logistic) baseline's on the same rows;
    when False, the baseline winning is a warning."""


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    champion_version: str | None = None
    """The champion version the candidate was compared with (None: there was none). Promotion is a compare-and-set
    on it: if the champion is another version by then, the candidate is gated again."""


def decide(
    cfg: GateConfig,
    *,
    test: dict[str, float],
    cv: dict[str, float],
    champion_test: dict[str, float] | None,
    champion_version: str | None = None,
    baseline_test: dict[str, float] | None = None,
    family: str = "gbm",
) -> GateDecision:
    """Check each rule; every rule's outcome is a reason, failures first. `champion_test` is the champion
    (`champion_version`) scored on the candidate's test rows; None when there is no champion, or one with other
    features (no comparison possible). `baseline_test`: the logistic baseline on the same rows; `family`: the
    candidate's model family, for the reasons' wording."""
    fails: list[str] = []
    oks: list[str] = []

    def rule(ok: bool, text: str) -> None:
        (oks if ok else fails).append(("ok: " if ok else "FAIL: ") + text)

    rule(cv["f1"] >= cfg.min_f1, f"out-of-fold F1 {cv['f1']:.3f} vs minimum {cfg.min_f1:.3f}")
    rule(test["roc_auc"] >= cfg.min_roc_auc, f"test ROC AUC {test['roc_auc']:.3f} vs minimum {cfg.min_roc_auc:.3f}")
    if champion_test is None and champion_version is not None:
        oks.append(f"ok: champion version {champion_version} has other features: not compared")
    elif champion_test is None:
        oks.append("ok: no current champion to compare with")
    else:
        floor = champion_test["roc_auc"] - cfg.max_drop
        rule(
            test["roc_auc"] >= floor,
            f"test ROC AUC {test['roc_auc']:.3f} vs champion{_version(champion_version)} "
            f"{champion_test['roc_auc']:.3f} on the same rows (allowed drop {cfg.max_drop:.3f})",
        )
    warns = []
    if baseline_test is not None:
        versus = (
            f"test ROC AUC {test['roc_auc']:.3f} vs logistic baseline {baseline_test['roc_auc']:.3f} on the same rows"
        )
        beaten = test["roc_auc"] < baseline_test["roc_auc"]
        if cfg.require_beat_baseline:
            rule(not beaten, f"{versus} (the {family} candidate must not be below the baseline)")
        elif beaten:
            warns.append(
                f"warn: the logistic baseline beats the {family} candidate: {versus} "
                "(CHURN_GATE_REQUIRE_BEAT_BASELINE=true would fail this gate)"
            )
    if test["roc_auc"] > cv["roc_auc"] + cfg.leak_margin:
        warns.append(
            f"warn: test ROC AUC {test['roc_auc']:.3f} is far above cross-validated {cv['roc_auc']:.3f}: "
            "check for leakage"
        )
    return GateDecision(passed=not fails, reasons=fails + oks + warns, champion_version=champion_version)


def _version(version: str | None) -> str:
    return "" if version is None else f" (version {version})"
