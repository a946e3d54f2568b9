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
