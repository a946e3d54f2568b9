"""Risk tiers of a churn probability, the same wherever a prediction is shown (API, UI, presets)."""

from __future__ import annotations

import numpy as np

MEDIUM_SHARE = 0.5
"""Medium risk starts at this share of the threshold (high risk starts at the threshold itself)."""
TIERS = ("low", "medium", "high")
_FEW = 16
"""Below this many probabilities `risks` calls `risk` for each (NumPy's fixed cost is the larger)."""


def risk(probability: float, threshold: float) -> str:
    """Risk tier consistent with the verdict: "high" exactly when the model says churn."""
    if probability >= threshold:
        return "high"
    return "medium" if probability >= threshold * MEDIUM_SHARE else "low"


def risks(proba: np.ndarray, threshold: float) -> list[str]:
    """`risk` of each probability (a 1,000-row batch at once: one search, no Python call per row)."""
    if len(proba) < _FEW:
        return [risk(p, threshold) for p in proba.tolist()]
    starts = np.array([threshold * MEDIUM_SHARE, threshold])
    return [TIERS[t] for t in np.searchsorted(starts, proba, side="right").tolist()]


def bounds(threshold: float) -> dict[str, float]:
    """Where the tiers of `risk` start (the info route publishes these for clients that explain a tier)."""
    return {"high": threshold, "medium": threshold * MEDIUM_SHARE}
