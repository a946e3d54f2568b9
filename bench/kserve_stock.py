"""A stock KServe custom predictor for bench/serve_bench.py, written as KServe's documentation writes one: a
`kserve.Model` whose `load()` fetches the model and whose `predict()` turns the V1 instances into a DataFrame and
calls `predict_proba`, served by `kserve.ModelServer` with its defaults. Same MLflow champion as the predictor.

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python bench/kserve_stock.py --http_port 8090
"""

from __future__ import annotations

import os
from typing import Any

import kserve
import mlflow.sklearn
import pandas as pd

MODEL_URI = os.environ.get("BASELINE_MODEL_URI", "models:/churnguard@champion")


class ChurnModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.model: Any = None
        self.load()

    def load(self) -> bool:
        self.model = mlflow.sklearn.load_model(MODEL_URI)
        self.ready = True
        return self.ready

    def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        proba = self.model.predict_proba(pd.DataFrame(payload["instances"]))[:, 1]
        return {"predictions": proba.tolist()}


if __name__ == "__main__":
    kserve.ModelServer().start([ChurnModel("churnguard")])
