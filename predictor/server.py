"""KServe's ModelServer, bound to a chosen address, with ChurnGuard's routes, HTTP metrics and error bodies."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import re
import signal
import struct
import time
import zlib
from collections.abc import MutableMapping
from typing import Any

import kserve.model_server
import orjson
import uvloop
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InferenceError, InvalidInput, ModelNotFound, ModelNotReady, ServerNotLive, ServerNotReady
from kserve.model_repository import ModelRepository
from kserve.model_server import ModelServer
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.multiprocess import server as multiprocess
from kserve.protocol.rest.server import RESTServer
from prometheus_client import CollectorRegistry, exposition
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from predictor import metrics
from predictor.decode import RequestError, check_binary_v2, show
from predictor.hot import HotRoutes, loads, read_body
from predictor.model import ChurnModel

log = logging.getLogger(__name__)


class JsonResponse(Response):
    """A JSON body rendered by orjson, as FastAPI's deprecated ORJSONResponse did (numpy values, non-string keys)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


class ChurnDataPlane(DataPlane):  # type: ignore[misc]
    """KServe's data plane where health tells the truth and binary V2 requests are checked before they are sliced."""

    async def ready(self) -> bool:
        """Server readiness (`/v2/health/ready`) means every registered model is ready, not just "process up"."""
        models = self.model_registry.get_models()
        return bool(models) and all([await self.model_registry.is_model_ready(name) for name in models])

    async def live(self) -> dict[str, str]:
        """Liveness (`/`, `/v2/health/live`) fails once the process cannot get back to serving by itself."""
        if not all(m.alive() for m in self.model_registry.get_models().values() if isinstance(m, ChurnModel)):
            raise ServerNotLive("the model loader stopped or hangs: restart the process")
        return {"status": "alive"}

    def decode_inference_request(self, body: Any, headers: dict[str, str], model_name: str) -> Any:
        if not isinstance(body, bytes):
            return super().decode_inference_request(body, headers, model_name)
        check_binary_v2(body, headers.get(INFERENCE_CONTENT_LENGTH_HEADER))
        try:
            return super().decode_inference_request(body, headers, model_name)
        except (InvalidInput, InferenceError, ValueError, struct.error) as exc:  # left: tensor bytes that do not decode
            raise RequestError(f"binary V2 request: {exc}", status=400, reason="malformed") from exc


REPOSITORY_ROUTE = "/v2/repository/models/{model_name}/"


async def _repository_off(model_name: str) -> JsonResponse:
    error = "model repository routes are off (an operator turns them on with CHURN_MODEL_REPOSITORY=true)"
    return JsonResponse({"error": error}, status_code=404)


def _hide_from_openapi(app: FastAPI, prefix: str) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema: dict[str, Any] = build()  # cached by FastAPI: filtered once, in place
        for path in [p for p in schema.get("paths", {}) if p.startswith(prefix)]:
            del schema["paths"][path]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class ChurnModelRepository(ModelRepository):  # type: ignore[misc]
    """KServe's model registry as the repository routes see it: unload stops serving the loaded version (the
    loader serves the champion again within one reload interval), load reloads the champion now. The model itself
    is never removed, so nothing a client does leaves a process that cannot recover."""

    def unload(self, name: str) -> None:
        model = self.get_model(name)
        if not isinstance(model, ChurnModel):
            raise KeyError(name)
        model.drop()

    async def load(self, name: str) -> bool:
        model = self.get_model(name)
        assert isinstance(model, ChurnModel)  # RepositoryRoutes checked the name
        return bool(await asyncio.to_thread(model.load))


class RepositoryRoutes(ModelRepositoryExtension):  # type: ignore[misc]
    """KServe's repository extension, answering 404 (not KServe's 503) for a model that does not exist."""

    async def load(self, model_name: str) -> None:
        if self._model_registry.get_model(model_name) is None:
            raise ModelNotFound(model_name)
        await super().load(model_name)


class ChurnRESTServer(RESTServer):  # type: ignore[misc]
    """KServe's REST server with ChurnGuard's routes and error bodies, serving `install`'s ASGI app around KServe's
    FastAPI app (the hot routes and HTTP metrics in front of FastAPI's own per-request work)."""

    def __init__(self, *args: Any, model: ChurnModel, model_repository: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self.model_repository = model_repository

    def create_application(self) -> None:
        """In each serving process (the one worker, or every forked one): ChurnGuard's routes first (so they win
        over KServe's), then KServe's, and the model's start (tracing, inference log, the loader thread)."""
        metrics.START_TIME.set(time.time())
        app = kserve.model_server.app
        outer = install(app, self.model, metrics.registry(multiprocess=self.model.settings.workers > 1))
        super().create_application()
        self.config.app = outer
        self.model.start()

    def _register_endpoints(self, app: FastAPI) -> None:
        if not self.model_repository:  # registered first, so these win over KServe's; and gone from /openapi.json
            for action in ("load", "unload"):
                app.add_api_route(REPOSITORY_ROUTE + action, _repository_off, methods=["POST"], include_in_schema=False)
            _hide_from_openapi(app, "/v2/repository/")
        super()._register_endpoints(app)

    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        app.add_exception_handler(RequestError, _request_error)
        app.add_exception_handler(RequestValidationError, _protocol_error)
        app.add_exception_handler(ClientDisconnect, _disconnected)
        app.add_exception_handler(HTTPException, _http_error)
        app.add_exception_handler(InvalidInput, _invalid_input)
        app.add_exception_handler(ServerNotReady, _not_ready)
        app.add_exception_handler(ModelNotReady, _not_ready)
        app.add_exception_handler(Exception, _internal)

    def _add_middlewares(self, app: FastAPI) -> None:
        """None: KServe's TimingMiddleware only feeds `kserve.trace` INFO lines (silenced here) but still costs two
        getrusage calls and a route lookup per request: 42% of request CPU with 2 workers (bench/README.md).
        HttpMetricsMiddleware times requests instead. (KServe's access-log middleware needs asgi-logger, which is
        not installed: predictor/__main__.py refuses --access_log_format.)"""


class ChurnModelServer(ModelServer):  # type: ignore[misc]
    """KServe's server, binding `host` (KServe hard-codes 0.0.0.0) and starting models that are not ready yet."""

    def __init__(self, *, host: str, model_repository: bool, **kwargs: Any) -> None:
        super().__init__(registered_models=ChurnModelRepository(), **kwargs)
        self.host = host
        self.model_repository = model_repository
        self.dataplane = ChurnDataPlane(model_registry=self.registered_models)
        self.model_repository_extension = RepositoryRoutes(model_registry=self.registered_models)

    def start(self, models: list[ChurnModel]) -> None:
        (model,) = models
        self.register_model(model)
        model.enable_latency_logging = self.enable_latency_logging
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
            model=model,
            model_repository=self.model_repository,
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
            self._rest_multiprocess_server._rest_server = rest  # ours: bound host, ChurnGuard's app and error bodies
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
        self.register_signal_handler()
        # The loop uvicorn would pick (uvloop unless asked for asyncio), not KServe's asyncio.run: with one worker
        # uvicorn serves in this loop (and with several, the supervisor does). uvloop: bench/README.md.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop if self.event_loop != "asyncio" else None) as runner:
            asyncio.set_event_loop(runner.get_loop())  # KServe's setup (executor, exception handler) reads it
            self.setup_event_loop()
            runner.run(self._serve())


FORK = multiprocessing.get_context("fork")


class WorkerProcess(multiprocess.RESTServerProcess):  # type: ignore[misc]
    """KServe's worker process, forked instead of spawned. A spawned worker re-imports everything (~3 s of CPU and
    ~280 MB each, bench/README.md); a forked one starts with what the supervisor imported, shared copy-on-write.
    The supervisor has no threads to lose and never loads a model: each worker starts its own
    (ChurnRESTServer.create_application)."""

    def __init__(self, sockets: list[Any], target: Any, log_config_file: str | None) -> None:
        super().__init__(sockets, target, log_config_file)
        self._process = FORK.Process(target=self._run, args=[sockets])

    def _run(self, sockets: list[Any]) -> Any:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):  # not the supervisor's (uvicorn sets its own)
            signal.signal(sig, signal.SIG_DFL)
        return self.target(sockets)


class ChurnRESTServerMultiProcess(multiprocess.RESTServerMultiProcess):  # type: ignore[misc]
    """KServe's worker supervisor, starting (and restarting) WorkerProcess instead of RESTServerProcess."""

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
        process = WorkerProcess(sockets, self._rest_server.run, self.log_config_file)
        process.start()
        log.info("started worker process %s", process.pid)
        return process


def route_templates(model_name: str) -> list[tuple[re.Pattern[str], str]]:
    m = re.escape(model_name)
    return [
        (re.compile(rf"^/v1/models/{m}:predict$"), "/v1/models/{model}:predict"),
        (re.compile(rf"^/v1/models/{m}:explain$"), "/v1/models/{model}:explain"),
        (re.compile(rf"^/v1/models/{m}/info$"), "/v1/models/{model}/info"),
        (re.compile(rf"^/v1/models/{m}/monitoring$"), "/v1/models/{model}/monitoring"),
        (re.compile(rf"^/v1/models/{m}/feedback$"), "/v1/models/{model}/feedback"),
        (re.compile(rf"^/v1/models/{m}/quality$"), "/v1/models/{model}/quality"),
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
        self._routes: dict[str, str] = {}  # known paths only (a bounded set): their route template
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # (route, method, status): the series

    def _route(self, path: str) -> str:
        route = self._routes.get(path)
        if route is not None:
            return route
        for pattern, template in self.templates:
            if pattern.match(path):
                self._routes[path] = template or path
                return template or path
        return "other"

    def _observe(self, route: str, method: str, status: int, seconds: float) -> None:
        children = self._children.get((route, method, status))
        if children is None:  # looked up once per (route, method, status), not per request
            requests = metrics.HTTP_REQUESTS.labels(route, method, metrics.status_class(status))
            children = self._children.setdefault(
                (route, method, status), (requests, metrics.HTTP_LATENCY.labels(route))
            )
        children[0].inc()
        children[1].observe(seconds)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route, start, status = self._route(scope["path"]), time.perf_counter(), 500
        seen, started = 0, False

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
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            length = dict(scope.get("headers", [])).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await _respond(scope, receive, observed_send, too_large())
                return
            try:
                await self.app(scope, counted_receive, observed_send)
            except RequestError as exc:  # the cap, hit by an inner app reading a body sent without a length
                if started:
                    raise
                await _respond(scope, receive, observed_send, exc)
        finally:
            self._observe(route, scope["method"], status, time.perf_counter() - start)


class GzipRequestMiddleware:
    """Request bodies sent with `Content-Encoding: gzip` are inflated before KServe reads them, to at most
    `max_body_bytes` (a small gzip can inflate a thousandfold); other encodings get 415, a body that is not gzip 400."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        encoding = dict(scope.get("headers", [])).get(b"content-encoding", b"identity").strip().lower()
        if scope["type"] != "http" or encoding == b"identity":
            await self.app(scope, receive, send)
            return
        # The whole body first, even when it will be refused: an answer before the body is read resets the
        # connection under a client still sending. The outer middleware bounds what is read.
        try:
            sent = await read_body(receive)
            if sent is None:  # the client went away
                await send({"type": "http.response.start", "status": 499, "headers": []})
                return
            if encoding not in (b"gzip", b"x-gzip"):
                text = encoding.decode("latin-1")
                raise RequestError(f"Content-Encoding {text!r}: send identity or gzip", status=415, reason="malformed")
            body = self._inflate(sent)
        except RequestError as exc:
            await _respond(scope, receive, send, exc)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-encoding", b"content-length")]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return dict(await receive())
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    def _inflate(self, data: bytes) -> bytes:
        inflater = zlib.decompressobj(wbits=31)  # wbits 31: the gzip container
        try:
            body = inflater.decompress(data, self.max_body_bytes + 1)
            if not inflater.eof and len(body) <= self.max_body_bytes:
                raise zlib.error("the gzip stream ends early")
        except zlib.error as exc:
            error = f"body labelled Content-Encoding gzip is not gzip data ({exc})"
            raise RequestError(error, status=400, reason="malformed") from exc
        if len(body) > self.max_body_bytes:
            error = f"request body over {self.max_body_bytes} bytes once inflated"
            raise RequestError(error, status=413, reason="too_large")
        return body


async def _respond(scope: dict[str, Any], receive: Any, send: Any, exc: RequestError) -> None:
    """An error answered by a middleware (outside FastAPI's exception handlers)."""
    metrics.ERRORS.labels(exc.reason).inc()
    await JsonResponse(exc.body(), status_code=exc.status)(scope, receive, send)


async def _request_error(_: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, RequestError)
    metrics.ERRORS.labels(exc.reason).inc()
    return JsonResponse(exc.body(), status_code=exc.status)


async def _protocol_error(request: Request, exc: Exception) -> JsonResponse:
    """A body FastAPI could not read as the protocol's request model (e.g. a V2 input without a shape)."""
    assert isinstance(exc, RequestValidationError)
    details = [
        {
            "row": None,
            "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or None,
            "value": show(e.get("input")),
            "rule": e.get("msg", "invalid"),
        }
        for e in exc.errors()
    ]
    return await _request_error(request, RequestError("body does not follow the protocol", details, 400, "malformed"))


async def _disconnected(request: Request, _: Exception) -> Response:
    """The client went away before its body arrived: nobody to answer, nothing went wrong here. 499 (nginx's
    "client closed request") keeps it out of the 5xx counts."""
    log.debug("client disconnected during the request body on %s", request.url.path)
    return Response(status_code=499)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's and FastAPI's own errors (no such route, a body FastAPI could not read) in the same body shape."""
    assert isinstance(exc, HTTPException)
    cause = exc.__cause__
    if isinstance(cause, ClientDisconnect):  # FastAPI turns a disconnect during its body parsing into a 400
        return await _disconnected(request, cause)
    message = f"body is not UTF-8 JSON ({cause})" if isinstance(cause, UnicodeDecodeError) else str(exc.detail)
    if exc.status_code in (404, 405):  # not a prediction that failed: keep the errors metric about those
        return JsonResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)
    error = RequestError(message, status=exc.status_code, reason="malformed")
    return await _request_error(request, error)


async def _invalid_input(request: Request, exc: Exception) -> JsonResponse:
    return await _request_error(request, RequestError(str(exc), status=400, reason="malformed"))


async def _not_ready(_: Request, exc: Exception) -> JsonResponse:
    """503 while no model is loaded. Expected during start-up and polled by probes: KServe's body, no traceback."""
    log.debug("not ready: %s", exc)
    return JsonResponse({"error": str(exc)}, status_code=503)


async def _internal(request: Request, exc: Exception) -> JsonResponse:
    """Never leak internals: log the exception, answer with a generic message."""
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return await _request_error(request, RequestError("internal error", status=500, reason="internal"))


def install(app: FastAPI, model: ChurnModel, registry: CollectorRegistry) -> HttpMetricsMiddleware:
    """ChurnGuard's routes on KServe's FastAPI app (the info, monitoring, feedback and quality routes, and `/metrics`
    from `registry`, registered before KServe's own route, so it wins), and the ASGI app to serve: HTTP metrics and
    the body cap, then gzip bodies, then the hot routes, in front of FastAPI (bench/README.md)."""

    async def info() -> dict[str, Any]:
        return model.info()

    async def monitoring() -> dict[str, Any]:
        return model.monitoring()

    async def feedback(request: Request) -> dict[str, Any]:
        return model.feedback(loads(await request.body()))

    async def quality() -> dict[str, Any]:
        return model.quality_report()

    async def metrics_route(request: Request) -> Response:
        model.quality.flush()  # the served rows queued since the last scrape
        encoder, content_type = exposition.choose_encoder(request.headers.get("accept", ""))
        return Response(content=encoder(registry), headers={"content-type": content_type})

    app.add_api_route(f"/v1/models/{model.name}/info", info, methods=["GET"])
    app.add_api_route(f"/v1/models/{model.name}/monitoring", monitoring, methods=["GET"])
    app.add_api_route(f"/v1/models/{model.name}/feedback", feedback, methods=["POST"])
    app.add_api_route(f"/v1/models/{model.name}/quality", quality, methods=["GET"])
    app.add_api_route("/metrics", metrics_route, methods=["GET"])
    limit = model.settings.max_body_bytes
    return HttpMetricsMiddleware(GzipRequestMiddleware(HotRoutes(app, model), limit), model.name, limit)
