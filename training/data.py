"""Synthetic churn data from the documented generative model (the reference's data)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def generate(rows: int, seed: int) -> pd.DataFrame:
    """Draw `rows` customers; churn ~ Bernoulli(sigmoid(logit)) with the logit in the README."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 75, rows)
    tenure = rng.integers(0, 72, rows)
    charges = np.round(rng.uniform(20, 120, rows), 2)
    contract = rng.choice([0, 1, 2], size=rows, p=[0.5, 0.3, 0.2])
    tickets = rng.integers(0, 10, rows)
    logit = -5 + 4 * (contract == 0) - 3 * (contract == 2) - 0.10 * tenure + 0.03 * charges + 0.8 * tickets - 0.02 * age
    churn = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "age": age,
            "tenure_months": tenure,
            "monthly_charges": charges,
            "contract_type": contract,
            "num_tickets": tickets,
            "churn": churn,
        }
    )
