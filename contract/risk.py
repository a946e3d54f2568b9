"""Risk tiers of a churn probability, the same wherever a prediction is shown (API, UI, presets)."""

from __future__ import annotations


def risk(probability: float, threshold: float) -> str:
    """Risk tier consistent with the verdict: "high" exactly when the model says churn."""
    if probability >= threshold:
        return "high"
    return "medium" if probability >= threshold / 2 else "low"


def bounds(threshold: float) -> dict[str, float]:
    """Where the tiers of `risk` start: high at the threshold, medium from half of it (the info route publishes these
    for clients that explain a tier; tests/unit hold the two equal)."""
    return {"high": threshold, "medium": threshold / 2}
