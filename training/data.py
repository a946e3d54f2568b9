"""Synthetic churn data from the documented generative model (the reference's data)."""

from __future__ import annotations

import numpy as np
import pandas as pd

CONTRACT_MIX = np.array([0.5, 0.3, 0.2])
"""Shares of month-to-month, one-year and two-year contracts."""
SHIFTED_MIX = np.array([0.85, 0.1, 0.05])
"""The contract mix at shift 1: most customers month-to-month."""


def generate(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Draw `rows` customers; churn ~ Bernoulli(probability(...)), the logit in the README. `shift` in [0, 1]
    moves the customers, not the way churn depends on them (a covariate shift): towards month-to-month contracts
    and shorter tenures, within the ranges of shift 0. Shift 0 draws exactly what it always drew."""
    if not 0.0 <= shift <= 1.0:
        raise ValueError(f"shift must be within [0, 1], not {shift}")
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 75, rows)
    tenure = rng.integers(0, 72 - round(48 * shift), rows)
    charges = np.round(rng.uniform(20, 120, rows), 2)
    contract = rng.choice([0, 1, 2], size=rows, p=(1 - shift) * CONTRACT_MIX + shift * SHIFTED_MIX)
    tickets = rng.integers(0, 10, rows)
    frame = pd.DataFrame(
        {
            "age": age,
            "tenure_months": tenure,
            "monthly_charges": charges,
            "contract_type": contract,
            "num_tickets": tickets,
        }
    )
    frame["churn"] = (rng.random(rows) < probability(frame)).astype(int)
    return frame


def probability(frame: pd.DataFrame) -> np.ndarray:
    """The true churn probability of each customer: sigmoid of the README's logit."""
    contract = frame["contract_type"].to_numpy()
    logit = (
        -5
        + 4 * (contract == 0)
        - 3 * (contract == 2)
        - 0.10 * frame["tenure_months"].to_numpy()
        + 0.03 * frame["monthly_charges"].to_numpy()
        + 0.8 * frame["num_tickets"].to_numpy()
        - 0.02 * frame["age"].to_numpy()
    )
    return np.asarray(1 / (1 + np.exp(-logit)))
