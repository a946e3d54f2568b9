"""Risk tiers (contract/risk.py): the tier of each prediction and the bounds the info route publishes."""

from __future__ import annotations

import numpy as np

from contract.risk import bounds, risk


def test_the_published_tier_bounds_are_where_risk_changes_tier() -> None:
    """The info route's `risk_tiers` (contract.risk.bounds, what the UI explains tiers with) agree with `risk`."""
    for threshold in (0.07, 0.31, 0.5, 0.93):
        b = bounds(threshold)
        for p in [*np.linspace(0, 1, 2001).tolist(), b["high"], b["medium"]]:
            want = "high" if p >= b["high"] else "medium" if p >= b["medium"] else "low"
            assert risk(p, threshold) == want, (threshold, p)
