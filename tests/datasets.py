"""Data sets of other shapes than the committed one, for "bring your own churn CSV" tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

TELCO_SPEC = """
name: telco-churn
target: {name: Churn, positive: "Yes", negative: "No"}
id_columns: [customerID]
features:
  - {name: gender, type: category, values: [Female, Male]}
  - {name: SeniorCitizen, type: category, values: [0, 1]}
  - {name: Partner, type: category, values: ["No", "Yes"]}
  - {name: tenure, type: integer, min: 0, max: 100}
  - {name: PhoneService, type: category, values: ["No", "Yes"]}
  - {name: MultipleLines, type: category, values: ["No", "No phone service", "Yes"]}
  - {name: InternetService, type: category, values: [DSL, Fiber optic, "No"]}
  - {name: OnlineSecurity, type: category, values: ["No", "No internet service", "Yes"]}
  - {name: TechSupport, type: category, values: ["No", "No internet service", "Yes"]}
  - {name: Contract, type: category, values: [Month-to-month, One year, Two year]}
  - {name: PaperlessBilling, type: category, values: ["No", "Yes"]}
  - name: PaymentMethod
    type: category
    values: [Bank transfer (automatic), Credit card (automatic), Electronic check, Mailed check]
  - {name: MonthlyCharges, type: float, min: 0, max: 200}
  - {name: TotalCharges, type: float, min: 0, max: 10000, nullable: true}
"""


def telco_like(n: int, seed: int = 0) -> pd.DataFrame:
    """A telco-style churn table as its CSV reads: string categories with spaces and parentheses, a 0/1 category,
    an integer, two floats (one with blank cells), an id column and a Yes/No target."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 73, n)
    phone = rng.random(n) < 0.9
    internet = rng.choice(["DSL", "Fiber optic", "No"], n, p=[0.35, 0.45, 0.2])
    online = internet != "No"
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.55, 0.25, 0.2])
    monthly = np.round(20 + 30 * (internet == "DSL") + 60 * (internet == "Fiber optic") + rng.normal(0, 5, n), 2)
    monthly = np.clip(monthly, 18.25, 150)
    total = np.round(monthly * tenure + rng.normal(0, 10, n).clip(0), 2)

    def service(p: float) -> np.ndarray:
        return np.where(online, np.where(rng.random(n) < p, "Yes", "No"), "No internet service")

    security, support = service(0.3), service(0.35)
    logit = (
        -0.8
        - 0.09 * tenure
        + 2.0 * (contract == "Month-to-month")
        - 1.5 * (contract == "Two year")
        + 1.6 * (internet == "Fiber optic")
        - 1.0 * (security == "Yes")
        - 0.8 * (support == "Yes")
        + 0.02 * (monthly - 60)
    )
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "customerID": [
                f"{rng.integers(1000, 9999)}-{''.join(rng.choice(list('ABCDEFGHIJ'), 5))}{i}" for i in range(n)
            ],
            "gender": rng.choice(["Female", "Male"], n),
            "SeniorCitizen": (rng.random(n) < 0.16).astype(int),
            "Partner": rng.choice(["No", "Yes"], n),
            "tenure": tenure,
            "PhoneService": np.where(phone, "Yes", "No"),
            "MultipleLines": np.where(phone, rng.choice(["No", "Yes"], n), "No phone service"),
            "InternetService": internet,
            "OnlineSecurity": security,
            "TechSupport": support,
            "Contract": contract,
            "PaperlessBilling": rng.choice(["No", "Yes"], n, p=[0.4, 0.6]),
            "PaymentMethod": rng.choice(
                ["Bank transfer (automatic)", "Credit card (automatic)", "Electronic check", "Mailed check"], n
            ),
            "MonthlyCharges": monthly,
            "TotalCharges": pd.Series(total).mask(tenure == 0),  # new customers: blank, as in the public data
            "Churn": np.where(churn, "Yes", "No"),
        }
    )
    return frame
