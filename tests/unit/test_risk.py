"""Risk tiers (contract/risk.py): the tier of each prediction and the bounds the info route publishes."""

from __future__ import annotations

import numpy as np

from contract.risk import bounds, risk, risks


def test_the_published_tier_bounds_are_where_risk_changes_tier() -> None:
    """The info route's `risk_tiers` (contract.risk.bounds, what the UI explains tiers with) agree with `risk`."""
    for threshold in (0.07, 0.31, 0.5, 0.93):
        b = bounds(threshold)
        for p in [*np.linspace(0, 1, 2001).tolist(), b["high"], b["medium"]]:
            want = "high" if p >= b["high"] else "medium" if p >= b["medium"] else "low"
            assert risk(p, threshold) == want, (threshold, p)


def test_risks_of_a_batch_are_risk_of_each_row() -> None:
    """The batch form (one search for 1,000 rows) gives every row the tier `risk` gives it, bounds included."""
    for threshold in (0.0, 0.07, 0.31, 0.5, 0.93):
        b = bounds(threshold)
        p = np.array([*np.linspace(0, 1, 2001).tolist(), b["high"], b["medium"], np.nextafter(b["high"], 0)])
        for rows in (p, p[:3], p[-20:]):
            assert risks(rows, threshold) == [risk(v, threshold) for v in rows.tolist()], threshold
