"""The challenger's promotion rule (training.promote.decide): shadow rows first, then no worse live quality,
realized when both versions have enough labelled rows, else estimated."""

from __future__ import annotations

from training.promote import Evidence, Live, decide


def _live(tp: float, fp: float, fn: float, tn: float, brier: float) -> Live:
    rows = tp + fp + fn + tn
    live = Live()
    live.add({"rows": rows, "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}, "brier": brier})
    return live


def _evidence(shadow_rows: float, **live: Live) -> Evidence:
    e = Evidence("3", "4", shadow_rows=shadow_rows)
    for key, value in live.items():
        version, source = key.split("_")
        e.live[("3" if version == "champion" else "4", source)] = value
    return e


GOOD = _live(80, 10, 10, 100, 0.10)  # F1 0.889
WORSE = _live(60, 30, 30, 80, 0.16)  # F1 0.667


def test_too_few_shadow_rows_refuses_even_a_better_challenger() -> None:
    d = decide(
        _evidence(99, champion_estimated=WORSE, challenger_estimated=GOOD),
        min_shadow_rows=100,
        min_labelled_rows=200,
        max_drop=0.0,
    )
    assert not d.passed and d.reasons[0].startswith("FAIL: 99 shadow rows")


def test_without_enough_labels_the_estimate_decides() -> None:
    e = _evidence(500, champion_estimated=WORSE, challenger_estimated=GOOD, champion_realized=GOOD)
    d = decide(e, min_shadow_rows=100, min_labelled_rows=200, max_drop=0.0)
    assert d.passed and d.basis == "estimated"
    worse = decide(
        _evidence(500, champion_estimated=GOOD, challenger_estimated=WORSE),
        min_shadow_rows=100,
        min_labelled_rows=200,
        max_drop=0.0,
    )
    assert not worse.passed and any(r.startswith("FAIL: estimated F1 0.667") for r in worse.reasons)


def test_with_labels_realized_quality_decides_over_the_estimate() -> None:
    e = _evidence(
        500,
        champion_estimated=WORSE,
        challenger_estimated=GOOD,  # the estimate says better...
        champion_realized=GOOD,
        challenger_realized=WORSE,  # ...the labels say worse
    )
    d = decide(e, min_shadow_rows=100, min_labelled_rows=200, max_drop=0.0)
    assert not d.passed and d.basis == "realized"
    assert decide(e, min_shadow_rows=100, min_labelled_rows=200, max_drop=0.25).passed  # a configured allowance


def test_no_quality_at_all_is_a_failure_not_a_pass() -> None:
    d = decide(_evidence(500), min_shadow_rows=100, min_labelled_rows=200, max_drop=0.0)
    assert not d.passed and "no estimated quality" in d.reasons[0]
