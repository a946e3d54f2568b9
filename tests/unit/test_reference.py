"""Reference statistics and PSI (shared by the drift CLI and the predictor's live drift)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from contract import reference
from contract.spec import DatasetSpec
from training.data import generate


def test_bins_are_right_closed_and_open_ended() -> None:
    counts = reference.bin_counts(np.array([-5.0, 1.0, 1.5, 2.0, 99.0]), [1.0, 2.0])
    assert counts.tolist() == [2.0, 2.0, 1.0]


def test_psi_small_without_shift_large_with_shift(spec: DatasetSpec) -> None:
    ref_df = generate(4000, seed=1)
    stats = reference.stats(ref_df, spec)
    same = reference.psi_frame(generate(1000, seed=2), stats, spec)
    assert max(same.values()) < 0.1
    shifted = generate(1000, seed=3)
    shifted["monthly_charges"] *= 1.3
    psi = reference.psi_frame(shifted, stats, spec)
    assert psi["monthly_charges"] > 0.25
    assert all(v < 0.1 for k, v in psi.items() if k != "monthly_charges")


def test_category_proportions_follow_spec_order(spec: DatasetSpec) -> None:
    df = pd.DataFrame({f: [1] * 4 for f in spec.feature_names} | {"contract_type": [0, 0, 0, 2]})
    stats = reference.stats(df, spec)
    assert stats["contract_type"] == {"values": [0, 1, 2], "proportions": [0.75, 0.0, 0.25]}
    assert reference.psi([0.75, 0.0, 0.25], np.array([3.0, 0.0, 1.0])) == 0.0


def test_outside_names_exactly_the_features_beyond_their_training_range_per_row(spec: DatasetSpec) -> None:
    """Each row's flags, in spec order, as a row-by-row reading of the ranges gives them (NaN, a missing value, is
    never outside; a value at a bound is inside)."""
    ranges = reference.training_ranges(reference.stats(generate(2000, seed=1), spec), spec)
    rng = np.random.default_rng(7)
    names = spec.feature_names
    lo = np.array([ranges[n]["min"] if n in ranges else 0.0 for n in names])
    hi = np.array([ranges[n]["max"] if n in ranges else 0.0 for n in names])
    x = lo + (hi - lo) * rng.uniform(-0.3, 1.3, size=(500, len(names)))
    x[rng.uniform(size=x.shape) < 0.1] = np.nan
    x[0], x[1] = lo, hi
    want = [
        [n for j, n in enumerate(names) if n in ranges and (x[i, j] < lo[j] or x[i, j] > hi[j])] for i in range(len(x))
    ]
    check = reference.RangeCheck.of(ranges, spec)
    got = check(x)
    assert got == want and got[0] == got[1] == []
    assert sum(map(bool, got)) > 100  # the flagged path ran, on many patterns
    assert check(x[:2]) == [[], []]
