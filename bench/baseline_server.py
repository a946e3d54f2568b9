"""Baseline for bench/serve_bench.py: a server that mirrors the reference project's API, on ChurnGuard's model.

FastAPI + a pydantic request model with the five features, a one-row pandas DataFrame per request, then
`model.predict(df)` followed by `model.predict_proba(df)` (the reference's double call), served by uvicorn with
its defaults (access log on). The model is the same registered sklearn pipeline the predictor serves:
`mlflow.sklearn.load_model("models:/churnguard@champion")` from MLFLOW_TRACKING_URI.

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python bench/baseline_server.py --port 8090 [--workers 2]

Routes: GET /health (200 once the model is loaded), POST /predict (one customer object),
POST /predict/batch (a list of customer objects).
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mlflow.sklearn
import pandas as pd
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

MODEL_URI = os.environ.get("BASELINE_MODEL_URI", "models:/churnguard@champion")
state: dict[str, Any] = {}


class Customer(BaseModel):
    age: int = Field(ge=18, le=100)
    tenure_months: int = Field(ge=0, le=120)
    monthly_charges: float = Field(ge=0, le=500)
    contract_type: int = Field(ge=0, le=2)
    num_tickets: int = Field(ge=0, le=50)


class Prediction(BaseModel):
    churn: int
    churn_probability: float


@asynccontextmanager
async def lifespan(_: FastAPI) -> Any:
    state["model"] = mlflow.sklearn.load_model(MODEL_URI)
    yield
    state.clear()


app = FastAPI(title="churn baseline", lifespan=lifespan)


@app.get("/health")
def health() -> dict[str, str]:
    if "model" not in state:
        raise HTTPException(503, "model not loaded")
    return {"status": "ok"}


@app.post("/predict", response_model=Prediction)
def predict(customer: Customer) -> Prediction:
    model = state["model"]
    df = pd.DataFrame([customer.model_dump()])
    label = model.predict(df)[0]
    proba = model.predict_proba(df)[0][1]
    return Prediction(churn=int(label), churn_probability=float(proba))


@app.post("/predict/batch", response_model=list[Prediction])
def predict_batch(customers: list[Customer]) -> list[Prediction]:
    model = state["model"]
    df = pd.DataFrame([c.model_dump() for c in customers])
    labels = model.predict(df)
    probas = model.predict_proba(df)[:, 1]
    return [Prediction(churn=int(y), churn_probability=float(p)) for y, p in zip(labels, probas, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    if args.workers == 1:
        uvicorn.run(app, host="127.0.0.1", port=args.port)
    else:  # worker processes need an import string
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        uvicorn.run(
            "baseline_server:app",
            host="127.0.0.1",
            port=args.port,
            workers=args.workers,
            app_dir=str(Path(__file__).resolve().parent),
        )


if __name__ == "__main__":
    main()
