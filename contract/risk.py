"""Risk tiers of a churn probability, the same wherever a prediction is shown (API, UI, presets)."""

from __future__ import annotations

MEDIUM_SHARE = 0.5
"""Medium risk starts at this share of the threshold (high risk starts at the threshold itself)."""


def risk(probability: float, threshold: float) -> str:
    """Risk tier consistent with the verdict: "high" exactly when the model says churn."""
    if probability >= threshold:
        return "high"
    return "medium" if probability >= threshold * MEDIUM_SHARE else "low"


def bounds(threshold: float) -> dict[str, float]:
    """Where the tiers of `risk` start (the info route publishes these for clients that explain a tier)."""
    return {"high": threshold, "medium": threshold * MEDIUM_SHARE}
