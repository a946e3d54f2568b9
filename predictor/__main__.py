"""`python -m predictor`: KServe's model server with the ChurnGuard model (see docs/interfaces.md).

Imports happen inside main(): with several workers, prometheus_client must see PROMETHEUS_MULTIPROC_DIR before
it is first imported (it picks its value store then)."""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import os
import sys
import tempfile
import warnings
from typing import Any


class _KeptOut(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Two imports kept out of serving processes, refused or replaced before anything imports them (forked workers
    inherit this; bench/README.md has the figures):

    - pyarrow: pandas imports it eagerly when it is installed (training needs it; the serve image does not have it).
      Nothing on the serving path uses it; ~30 MB of RSS and ~0.25 s of start-up per process. Refused, so pandas
      sees it as absent. Not a `sys.modules["pyarrow"] = None` entry: scikit-learn looks pyarrow up there and would
      fail on it.
    - KServe's Kubernetes client: `kserve/__init__` imports `kserve.api.kserve_client` for `KServeClient`, which
      imports the `kubernetes` package. A model server never uses it (~21 MB and ~0.5 s per process). Replaced by a
      module whose `KServeClient` says why it is absent; tests/unit/test_dependency_internals.py fails when KServe
      imports more of it."""

    CLIENT = "kserve.api.kserve_client"

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name.split(".", maxsplit=1)[0] == "pyarrow":
            raise ModuleNotFoundError(f"No module named {name!r} (kept out of serving processes)", name=name)
        return importlib.machinery.ModuleSpec(name, self) if name == self.CLIENT else None

    def create_module(self, spec: Any) -> None:
        return None  # the default module object

    def exec_module(self, module: Any) -> None:
        module.KServeClient = _NoKServeClient


class _NoKServeClient:
    def __init__(self, *_: Any, **__: Any) -> None:
        raise RuntimeError("KServeClient (the Kubernetes client) is kept out of serving processes (predictor/__main__)")


sys.meta_path.insert(0, _KeptOut())


def main() -> None:
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--workers", type=int, default=1)
    if early.parse_known_args()[0].workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="churnguard-metrics-")

    import logging

    import kserve.model_server
    from pydantic import ValidationError

    from predictor.model import ChurnModel
    from predictor.server import ChurnModelServer
    from predictor.settings import PredictorSettings

    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser], description=__doc__)
    # gRPC only when asked for; the name comes from settings; no per-request latency log line (bench/README.md:
    # per-request logging cost ~10% of request CPU); access and timing logs below WARNING stay off.
    parser.set_defaults(enable_grpc=False, model_name=None, enable_latency_logging=False)
    args, _ = parser.parse_known_args()
    if args.access_log_format:
        parser.error(
            "--access_log_format needs KServe's optional asgi-logger package, which is not installed; "
            "churnguard_http_requests_total and churnguard_http_request_duration_seconds count every request"
        )
    try:
        overrides = {"model_name": args.model_name} if args.model_name else {}
        settings = PredictorSettings(workers=args.workers, **overrides)
    except ValidationError as exc:
        print(f"invalid predictor settings:\n{exc}", file=sys.stderr)
        sys.exit(2)
    if settings.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    # Fail fast inside MLflow's client: the loader thread does the retrying, with backoff.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in server logs
    logging.basicConfig(level=logging.INFO)
    # KServe's V1 routes still answer with FastAPI's ORJSONResponse, which warns on every use (ours do not use it).
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated", category=UserWarning)

    for noisy in ("uvicorn.access", "kserve.trace", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    server = ChurnModelServer(
        host=settings.host,
        model_repository=settings.model_repository,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=settings.workers,
        enable_grpc=args.enable_grpc,
        enable_latency_logging=args.enable_latency_logging,
    )
    server.start([ChurnModel(settings)])


if __name__ == "__main__":
    main()
