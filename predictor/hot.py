"""The two hot routes, `POST /v1/models/<name>:predict` and `POST /v2/models/<name>/infer` (JSON), answered here as
plain ASGI: what KServe's handlers and `Model.__call__` do for ChurnModel (its request_* histograms and latency log
line around `predict`; ChurnModel has no preprocess, postprocess or validate of its own, tests/unit/test_hot.py),
then ChurnGuard's decoding, scoring, metrics and tracing, with the same error bodies, and without FastAPI's routing,
KServe's data plane or the pydantic request and response models (bench/README.md). Everything else, binary V2 and
cloud events included, goes on to KServe's app."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from kserve import InferInput, InferRequest, InferResponse
from kserve import metrics as kserve_metrics
from kserve.errors import InvalidInput, ModelNotReady
from kserve.logging import trace_logger

from predictor import metrics
from predictor.decode import RequestError
from predictor.model import ChurnModel

log = logging.getLogger(__name__)
JSON_HEADERS = [(b"content-type", b"application/json")]


class HotRoutes:
    def __init__(self, app: Any, model: ChurnModel) -> None:
        self.app = app
        self.model = model
        self.v1 = f"/v1/models/{model.name}:predict"
        self.v2 = f"/v2/models/{model.name}/infer"
        labels = kserve_metrics.get_labels(model.name)
        self._kserve = [
            h.labels(**labels)
            for h in (kserve_metrics.PRE_HIST_TIME, kserve_metrics.PREDICT_HIST_TIME, kserve_metrics.POST_HIST_TIME)
        ]
        """KServe's request_preprocess/predict/postprocess_seconds of this model, as `Model.__call__` observes them."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or scope["method"] != "POST" or path not in (self.v1, self.v2):
            await self.app(scope, receive, send)
            return
        content_type, cloud_event = b"application/json", False
        for k, v in scope["headers"]:
            if k == b"content-type":
                content_type = v.split(b";")[0].strip().lower()
            elif k.startswith(b"ce-"):
                cloud_event = True
        if (
            cloud_event
            or content_type == b"application/cloudevents+json"
            or (path == self.v2 and content_type != b"application/json")
        ):
            await self.app(scope, receive, send)  # binary V2 and cloud events: KServe's own handlers
            return
        body = await read_body(receive)
        if body is None:  # the client went away: nobody to answer (counted as 499, not an error)
            await send({"type": "http.response.start", "status": 499, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        status, payload = await self._answer(path == self.v2, body, scope)
        content = orjson.dumps(payload)
        await send({"type": "http.response.start", "status": status, "headers": _headers(content)})
        await send({"type": "http.response.body", "body": content})

    async def _answer(self, v2: bool, body: bytes, scope: dict[str, Any]) -> tuple[int, Any]:
        try:
            request = _v2_request(loads(body), self.model.name) if v2 else loads(body)
            pre, predict, post = self._kserve
            pre.observe(0.0)  # ChurnModel's preprocess and postprocess are KServe's: nothing runs
            start = time.perf_counter()
            try:
                response = await self.model.predict(request)
            finally:  # observed for failed calls too, as KServe's timer does
                seconds = time.perf_counter() - start
                predict.observe(seconds)
            post.observe(0.0)
            if self.model.enable_latency_logging:
                request_id = dict(scope["headers"]).get(b"x-request-id", b"N.A.").decode("latin-1")
                trace_logger.info(
                    f"requestId: {request_id}, preprocess_ms: 0, explain_ms: 0, predict_ms: {seconds * 1000}, "
                    "postprocess_ms: 0"
                )
            return 200, _v2_response(response) if isinstance(response, InferResponse) else response
        except RequestError as exc:
            error = exc
        except InvalidInput as exc:  # KServe's own tensor checks (e.g. to_rest of a response)
            error = RequestError(str(exc), status=400, reason="malformed")
        except ModelNotReady as exc:
            return 503, {"error": str(exc)}
        except Exception:  # never leak internals (this app runs outside FastAPI's exception handlers)
            log.exception("unhandled error on %s", self.v2 if v2 else self.v1)
            error = RequestError("internal error", status=500, reason="internal")
        metrics.ERRORS.labels(error.reason).inc()
        return error.status, error.body()


async def read_body(receive: Any) -> bytes | None:
    """The whole request body, or None when the client disconnected before it arrived."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _headers(content: bytes) -> list[tuple[bytes, bytes]]:
    return [*JSON_HEADERS, (b"content-length", str(len(content)).encode())]


def loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        rule = "must be JSON in UTF-8 (no lone surrogates)"
        detail = [{"row": None, "field": None, "value": None, "rule": rule}]
        raise RequestError(f"body is not JSON: {exc}", detail, status=400, reason="malformed") from exc


def _malformed(message: str, field: Any = None) -> RequestError:
    detail = [{"row": None, "field": field, "value": None, "rule": message}]
    return RequestError(message, detail, status=400, reason="malformed")


def _v2_request(body: Any, model_name: str) -> InferRequest:
    """An Open Inference Protocol request body as KServe's InferRequest, with its structure checked (what the
    pydantic model checked); shapes, datatypes and values are the decoder's business."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise _malformed('body must be a JSON object with an "inputs" list')
    unknown = sorted(set(body) - {"id", "parameters", "inputs", "outputs"})
    if unknown:
        raise _malformed(f"unknown top-level fields {unknown}")
    if body.get("id") is not None and not isinstance(body["id"], str):
        raise _malformed('"id" must be a string', "id")
    if body.get("parameters") is not None and not isinstance(body["parameters"], dict):
        raise _malformed('"parameters" must be an object', "parameters")
    inputs = []
    for i, t in enumerate(body["inputs"]):
        name = t.get("name") if isinstance(t, dict) else None
        if not isinstance(t, dict) or not isinstance(name, str):
            raise _malformed(f"input {i} needs a string name", f"inputs.{i}")
        for key, kind in (("shape", list), ("datatype", str), ("data", list)):
            if not isinstance(t.get(key), kind):
                raise _malformed(f"input {name!r} needs {key!r} as a {kind.__name__}", name)
        if t.get("parameters") is not None and not isinstance(t["parameters"], dict):
            raise _malformed(f"input {name!r}: parameters must be an object", name)
        inputs.append(InferInput(name, t["shape"], t["datatype"], t["data"], t.get("parameters") or {}))
    return InferRequest(model_name, inputs, request_id=body.get("id"), parameters=body.get("parameters"))


def _v2_response(response: InferResponse) -> dict[str, Any]:
    """The JSON KServe's handler writes (its pydantic InferenceResponse, field for field)."""
    rest, _ = response.to_rest()
    outputs = [
        {"name": o["name"], "shape": o["shape"], "datatype": o["datatype"], "parameters": None, "data": o["data"]}
        for o in rest["outputs"]
    ]
    return {
        "model_name": rest["model_name"],
        "model_version": rest.get("model_version"),
        "id": rest.get("id", ""),
        "parameters": rest.get("parameters"),
        "outputs": outputs,
    }
