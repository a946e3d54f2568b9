"""KServe's ModelServer, bound to a chosen address, with ChurnGuard's routes, HTTP metrics and error bodies."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import re
import signal
import time
from collections.abc import MutableMapping
from typing import Any

import kserve.model_server
from fastapi import FastAPI, Request
from fastapi.responses import ORJSONResponse, Response
from kserve.errors import InvalidInput, ModelNotReady, ServerNotReady
from kserve.model_server import ModelServer
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.rest.multiprocess import server as multiprocess
from kserve.protocol.rest.server import RESTServer
from prometheus_client import CollectorRegistry, exposition

from predictor import metrics
from predictor.decode import RequestError
from predictor.model import ChurnModel

log = logging.getLogger(__name__)


class ReadyDataPlane(DataPlane):  # type: ignore[misc]
    """Server readiness (`/v2/health/ready`) means every registered model is ready, not just "process up"."""

    async def ready(self) -> bool:
        models = self.model_registry.get_models()
        return bool(models) and all([await self.model_registry.is_model_ready(name) for name in models])


class ChurnRESTServer(RESTServer):  # type: ignore[misc]
    """KServe's REST server with ChurnGuard's error bodies (registered after KServe's, so they win)."""

    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        app.add_exception_handler(RequestError, _request_error)
        app.add_exception_handler(InvalidInput, _invalid_input)
        app.add_exception_handler(ServerNotReady, _not_ready)
        app.add_exception_handler(ModelNotReady, _not_ready)
        app.add_exception_handler(Exception, _internal)

    def _add_middlewares(self, app: FastAPI) -> None:
        """KServe's TimingMiddleware only feeds `kserve.trace` INFO lines (silenced here) but still costs two
        getrusage calls and a route lookup per request: 42% of request CPU with 2 workers (bench/README.md).
        HttpMetricsMiddleware times requests instead. Asking for an access log format brings KServe's back."""
        if self.access_log_format:
            super()._add_middlewares(app)


class ChurnModelServer(ModelServer):  # type: ignore[misc]
    """KServe's server, binding `host` (KServe hard-codes 0.0.0.0) and starting models that are not ready yet."""

    def __init__(self, *, host: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.dataplane = ReadyDataPlane(model_registry=self.registered_models)

    def start(self, models: list[ChurnModel]) -> None:
        for model in models:
            self.register_model(model)
            model.enable_latency_logging = self.enable_latency_logging
            if self.workers == 1:
                start_worker(model)  # with several workers, each one starts its own copy (WorkerProcess)
        rest = ChurnRESTServer(
            kserve.model_server.FASTAPI_APP_IMPORT_STRING,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            access_log_format=self.access_log_format,
            workers=self.workers,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
        )
        rest.config.host = self.host
        if self.workers > 1:
            self._rest_multiprocess_server = ChurnRESTServerMultiProcess(
                kserve.model_server.FASTAPI_APP_IMPORT_STRING,
                self.dataplane,
                self.model_repository_extension,
                self.http_port,
                workers=self.workers,
                grace_period=self.grace_period,
            )
            self._rest_multiprocess_server._rest_server = rest  # ours: bound host and ChurnGuard's error bodies
            self._rest_multiprocess_server.models = models
            self.servers.append(self._rest_multiprocess_server.start())
        else:
            self._rest_server = rest
            self.servers.append(rest.start())
        if self.enable_grpc:
            from kserve.protocol.grpc.server import GRPCServer

            self._grpc_server = GRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs=vars(kserve.model_server.args),
                grace_period=self.grace_period,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())


FORK = multiprocessing.get_context("fork")


class WorkerProcess(multiprocess.RESTServerProcess):  # type: ignore[misc]
    """KServe's worker process, forked instead of spawned. A spawned worker re-imports everything (~3 s of CPU and
    ~280 MB each, bench/README.md); a forked one starts with what the supervisor imported, shared copy-on-write.
    The supervisor has no threads to lose and never loads a model: each worker starts its own (`start_worker`)."""

    def __init__(self, sockets: list[Any], target: Any, models: list[ChurnModel], log_config_file: str | None) -> None:
        super().__init__(sockets, target, log_config_file)
        self._process = FORK.Process(target=self._run, args=[models, sockets])

    def _run(self, models: list[ChurnModel], sockets: list[Any]) -> Any:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):  # not the supervisor's (uvicorn sets its own)
            signal.signal(sig, signal.SIG_DFL)
        for model in models:
            start_worker(model)
        return self.target(sockets)


class ChurnRESTServerMultiProcess(multiprocess.RESTServerMultiProcess):  # type: ignore[misc]
    """KServe's worker supervisor, starting (and restarting) WorkerProcess instead of RESTServerProcess."""

    models: list[ChurnModel]

    def init_processes(self, sockets: list[Any]) -> None:
        # Python's advice for fork without exec: freeze what was imported so the workers' collections skip it
        # (0.13 s each here) and do not touch, hence copy, those pages.
        gc.collect()
        gc.freeze()
        for _ in range(self._rest_server.config.workers):
            self._processes.append(self._fork(sockets))

    async def keep_subprocess_alive(self, sockets: list[Any]) -> None:
        for idx, process in enumerate(self._processes):
            if self.should_exit.is_set():
                return
            if not process.is_alive():
                process.kill()  # hung or gone
                await process.wait_for_termination()
                metrics.process_dead(process.pid)  # its live gauges (model loaded, model info) go with it
                if self.should_exit.is_set():
                    return
                log.warning("worker process %s died; starting another", process.pid)
                self._processes[idx] = self._fork(sockets)

    def _fork(self, sockets: list[Any]) -> WorkerProcess:
        process = WorkerProcess(sockets, self._rest_server.run, self.models, self.log_config_file)
        process.start()
        log.info("started worker process %s", process.pid)
        return process


def route_templates(model_name: str) -> list[tuple[re.Pattern[str], str]]:
    m = re.escape(model_name)
    return [
        (re.compile(rf"^/v1/models/{m}:predict$"), "/v1/models/{model}:predict"),
        (re.compile(rf"^/v1/models/{m}:explain$"), "/v1/models/{model}:explain"),
        (re.compile(rf"^/v1/models/{m}/info$"), "/v1/models/{model}/info"),
        (re.compile(rf"^/v1/models/{m}$"), "/v1/models/{model}"),
        (re.compile(rf"^/v2/models/{m}/infer$"), "/v2/models/{model}/infer"),
        (re.compile(rf"^/v2/models/{m}/ready$"), "/v2/models/{model}/ready"),
        (re.compile(rf"^/v2/models/{m}$"), "/v2/models/{model}"),
        (re.compile(r"^/v2/health/(live|ready)$"), ""),
        (re.compile(r"^/(metrics|v2|v1/models)?$"), ""),
    ]


class HttpMetricsMiddleware:
    """Counts and times every request by route template (unknown paths are "other"), and caps body size."""

    def __init__(self, app: Any, model_name: str, max_body_bytes: int) -> None:
        self.app = app
        self.templates = route_templates(model_name)
        self.max_body_bytes = max_body_bytes

    def _route(self, path: str) -> str:
        for pattern, template in self.templates:
            if pattern.match(path):
                return template or path
        return "other"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route, start, status = self._route(scope["path"]), time.perf_counter(), 500
        seen = 0

        def too_large() -> RequestError:
            return RequestError(f"request body over {self.max_body_bytes} bytes", status=413, reason="too_large")

        async def counted_receive() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body_bytes:
                raise too_large()
            return message

        async def observed_send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            length = dict(scope.get("headers", [])).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                exc = too_large()
                metrics.ERRORS.labels(exc.reason).inc()
                await ORJSONResponse(exc.body(), status_code=exc.status)(scope, receive, observed_send)
                return
            await self.app(scope, counted_receive, observed_send)
        finally:
            metrics.HTTP_REQUESTS.labels(route, scope["method"], metrics.status_class(status)).inc()
            metrics.HTTP_LATENCY.labels(route).observe(time.perf_counter() - start)


async def _request_error(_: Request, exc: Exception) -> ORJSONResponse:
    assert isinstance(exc, RequestError)
    metrics.ERRORS.labels(exc.reason).inc()
    return ORJSONResponse(exc.body(), status_code=exc.status)


async def _invalid_input(request: Request, exc: Exception) -> ORJSONResponse:
    return await _request_error(request, RequestError(str(exc), status=400, reason="malformed"))


async def _not_ready(_: Request, exc: Exception) -> ORJSONResponse:
    """503 while no model is loaded. Expected during start-up and polled by probes: KServe's body, no traceback."""
    log.debug("not ready: %s", exc)
    return ORJSONResponse({"error": str(exc)}, status_code=503)


async def _internal(request: Request, exc: Exception) -> ORJSONResponse:
    """Never leak internals: log the exception, answer with a generic message."""
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return await _request_error(request, RequestError("internal error", status=500, reason="internal"))


def start_worker(model: ChurnModel) -> None:
    """Everything one serving process needs, in that process: ChurnGuard's routes on KServe's app, the metrics
    it serves, and the model's own start (tracing, inference log, the loader thread)."""
    metrics.START_TIME.set(time.time())
    install(kserve.model_server.app, model, metrics.registry(multiprocess=model.settings.workers > 1))
    model.start()


def install(app: FastAPI, model: ChurnModel, registry: CollectorRegistry) -> None:
    """ChurnGuard's additions to KServe's FastAPI app: the info route, `/metrics` from `registry` (registered
    before KServe's own route, so it wins), and HTTP metrics."""

    async def info() -> dict[str, Any]:
        return model.info()

    async def metrics_route(request: Request) -> Response:
        encoder, content_type = exposition.choose_encoder(request.headers.get("accept", ""))
        return Response(content=encoder(registry), headers={"content-type": content_type})

    app.add_api_route(f"/v1/models/{model.name}/info", info, methods=["GET"])
    app.add_api_route("/metrics", metrics_route, methods=["GET"])
    app.add_middleware(HttpMetricsMiddleware, model_name=model.name, max_body_bytes=model.settings.max_body_bytes)
