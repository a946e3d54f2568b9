"""`python -m predictor`: KServe's model server with the ChurnGuard model (see docs/interfaces.md)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import kserve.model_server
from pydantic import ValidationError

from predictor import metrics
from predictor.inference_log import InferenceLog
from predictor.model import ChurnModel
from predictor.server import ChurnModelServer, install
from predictor.settings import PredictorSettings
from predictor.tracing import Tracer


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser], description=__doc__)
    parser.set_defaults(enable_grpc=False, model_name=None)  # gRPC only when asked for; name from settings
    args, _ = parser.parse_known_args()
    try:
        settings = PredictorSettings(**({"model_name": args.model_name} if args.model_name else {}))
    except ValidationError as exc:
        print(f"invalid predictor settings:\n{exc}", file=sys.stderr)
        sys.exit(2)
    if settings.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    # Fail fast inside MLflow's client: the loader thread does the retrying, with backoff.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    logging.basicConfig(level=logging.INFO)

    metrics.START_TIME.set(time.time())
    metrics.register_drift_collector()
    tracer = Tracer(enabled=settings.tracing, sample_ratio=settings.trace_sample_ratio)
    tracer.start()
    inference_log = (
        InferenceLog(
            settings.inference_log_dir,
            sample_ratio=settings.inference_log_sample_ratio,
            max_bytes=settings.inference_log_max_bytes,
        )
        if settings.inference_log_dir
        else None
    )
    model = ChurnModel(settings, tracer, inference_log)
    install(kserve.model_server.app, model)
    server = ChurnModelServer(
        host=settings.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        enable_grpc=args.enable_grpc,
        enable_latency_logging=args.enable_latency_logging,
        workers=1,
    )
    server.start([model])


if __name__ == "__main__":
    main()
