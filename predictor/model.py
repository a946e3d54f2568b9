"""The KServe model: lifecycle (load, watch the alias, swap) and the predict / explain handlers."""

from __future__ import annotations

import gc
import logging
import secrets
import threading
import time
from typing import Any

import kserve
import numpy as np
import orjson
from kserve import InferOutput, InferRequest, InferResponse

from contract import columns
from contract.risk import bounds, risks
from predictor import champion, metrics, registry
from predictor.decode import RequestError, rows
from predictor.inference_log import InferenceLog
from predictor.quality import Ids, QualityMonitor, parse_feedback, report
from predictor.settings import PredictorSettings
from predictor.shadow import Shadow
from predictor.tracing import Record, Tracer

log = logging.getLogger(__name__)


class ChurnModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, settings: PredictorSettings) -> None:
        super().__init__(settings.model_name)
        self.settings = settings
        self.registry = registry.connect(settings)
        self.served: champion.Served | None = None
        self.tracer = Tracer(enabled=False, sample_ratio=0)
        self.inference_log: InferenceLog | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._attempt_since: float | None = None
        self._loading = threading.Lock()  # the loader thread and the repository route's load never overlap
        key = settings.feedback_key.get_secret_value().encode() if settings.feedback_key else secrets.token_bytes(32)
        self.ids = Ids(
            key, settings.model_name, max_age_days=settings.feedback_max_age_days, remember=settings.feedback_remember
        )
        self.quality = QualityMonitor()
        self.shadow = Shadow(self.quality, sample_ratio=settings.shadow_sample_ratio)

    # -- lifecycle ------------------------------------------------------------------------------------------
    def load(self) -> bool:
        """One attempt: resolve the URI and, if it names another version, load it and swap it in."""
        with self._loading:
            return self._load()

    def _load(self) -> bool:
        name, version = champion.resolve(self.registry, self.settings.resolved_model_uri)
        if self.served is not None and self.served.version == version:
            return True
        try:
            new = champion.load(self.registry, name, version, max_rows=self.settings.max_rows)
        except champion.LoadError:
            metrics.RELOADS.labels("failure").inc()
            raise
        previous = self.served
        gc.collect()
        gc.freeze()  # the model's objects never die: keep them out of every later collection (GC pauses)
        self.served = new  # one reference assignment: requests see the old or the new model, never a mix
        self.ready = True
        metrics.DRIFT.monitor = metrics.DriftMonitor(
            new.spec, new.reference, self.settings.drift_window, model_name=name, model_version=version
        )
        metrics.served(
            name,
            version,
            new.threshold,
            float(new.info.get("predicted_positive_rate", 0.0)),
            (previous.version, previous.threshold) if previous else None,
        )
        metrics.test_metrics(version, _test_metrics(new), previous.version if previous else None)
        self._shadow_pair()
        log.info("serving %s version %s (was %s)", name, version, previous.version if previous else "none")
        return True

    def start(self) -> None:
        """In the serving process: start tracing and the inference log, and watch the alias in a thread (retry
        with backoff until a model loads, then poll for moves)."""
        s = self.settings
        if s.feedback_key is None:
            log.warning(
                "CHURN_FEEDBACK_KEY is not set: prediction ids are signed with a key of this process, so feedback "
                "counts only here and only until it restarts (the Helm chart sets one from a Secret)"
            )
        self.tracer = Tracer(
            enabled=s.tracing, sample_ratio=s.trace_sample_ratio, max_per_second=s.trace_max_per_second
        )
        self.tracer.start()
        if s.inference_log_dir is not None:
            self.inference_log = InferenceLog(
                s.inference_log_dir, sample_ratio=s.inference_log_sample_ratio, max_bytes=s.inference_log_max_bytes
            )
        if s.shadow_sample_ratio > 0 and s.model_uri is None:
            self.shadow.start()
        self._thread = threading.Thread(target=self._watch, name="churnguard-loader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def drop(self) -> None:
        """Stop serving the loaded version (KServe's unload route, when an operator enabled it); the loader serves
        the champion again at its next check, within one reload interval."""
        served, self.served, self.ready = self.served, None, False
        if served is not None:
            metrics.unserved(served.name, served.version, served.threshold)
            log.warning("unloaded version %s on request; the loader reloads the champion", served.version)

    def alive(self) -> bool:
        """Can this process still recover by itself? Only while the loader runs and no attempt hangs: a stuck or
        dead loader means a restart is the only way back to serving the champion."""
        if self._thread is None:
            return True  # not started yet (or a supervisor process that never serves)
        since = self._attempt_since
        stalled = since is not None and time.monotonic() - since > self.settings.loader_stall_seconds
        return self._thread.is_alive() and not stalled

    def _watch(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            self._attempt_since = time.monotonic()
            try:
                self.load()
                delay = self.settings.reload_interval
                self._watch_challenger()
            except champion.LoadError as exc:
                log.error("rejected: %s; %s", exc, "still serving " + self.served.version if self.served else "")
                delay = self.settings.reload_interval
            except Exception as exc:  # MLflow unreachable or alias missing: keep serving what we have
                metrics.REGISTRY_ERRORS.inc()
                what = f"still serving version {self.served.version}" if self.served else "not ready"
                log.warning("cannot reach the model registry (%s: %s); %s", type(exc).__name__, exc, what)
                delay = self.settings.reload_interval if self.served else min(delay * 2, self.settings.reload_interval)
            self._attempt_since = None
            self._stop.wait(delay)

    def _watch_challenger(self) -> None:
        """Follow the `challenger` alias: load the version it names for the shadow, or drop it when it is gone or
        is the champion. A failure keeps what the shadow had (it never touches the champion)."""
        if self._thread is None or self.settings.model_uri is not None or self.settings.shadow_sample_ratio <= 0:
            return
        try:
            found = champion.challenger(self.registry, self.settings.model_name)
        except Exception as exc:
            log.warning("cannot read the challenger alias (%s: %s)", type(exc).__name__, exc)
            return
        current = self.shadow.challenger
        if found is None or (self.served is not None and found == self.served.version):
            if current is not None:
                log.info("no challenger any more (was version %s)", current.version)
                self.shadow.set_challenger(None)
            return
        if current is not None and current.version == found:
            return
        try:
            new = champion.load(self.registry, self.settings.model_name, found, max_rows=self.settings.max_rows)
        except champion.LoadError as exc:
            log.error("challenger rejected: %s", exc)
            return
        self.shadow.set_challenger(new)
        self._shadow_pair()
        log.info("challenger version %s in shadow (%.0f%% of requests)", found, 100 * self.settings.shadow_sample_ratio)

    def _shadow_pair(self) -> None:
        served, challenger = self.served, self.shadow.challenger
        if served is not None and challenger is not None and served.version != challenger.version:
            metrics.shadow_series(served.version, challenger.version)

    def _current(self) -> champion.Served:
        served = self.served
        if served is None:
            raise kserve.errors.ModelNotReady(self.name)
        return served

    # -- protocols ------------------------------------------------------------------------------------------
    def get_input_types(self) -> list[dict[str, Any]]:
        served = self._current()
        return [{"name": f.name, "datatype": columns.v2_datatype(f), "shape": [-1]} for f in served.spec.features]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [
            {"name": "churn_probability", "datatype": "FP64", "shape": [-1]},
            {"name": "churn", "datatype": "INT64", "shape": [-1]},
            {"name": "outside_training_range", "datatype": "BYTES", "shape": [-1]},
            {"name": "prediction_id", "datatype": "BYTES", "shape": [-1]},
        ]

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        served = self._current()
        start = time.time_ns()
        route = "v2.infer" if isinstance(payload, InferRequest) else "v1.predict"
        try:
            x = (
                served.decoder.v2(payload.inputs)
                if isinstance(payload, InferRequest)
                else served.decoder.v1(_json(payload))
            )
            t0 = time.time_ns()
            proba = served.scorer.proba(x)
            t1 = time.time_ns()
        except RequestError as exc:
            self._trace(route, served, payload, exc.body(), start, start, start, error=exc.message)
            raise
        labels = (proba >= served.threshold).astype(np.int64)
        outside = served.outside(x)  # served, but flagged: an extrapolation
        metrics.scored(served.version, proba, labels, (t1 - t0) / 1e9)
        metrics.outside_range(outside)
        if metrics.DRIFT.monitor is not None:
            metrics.DRIFT.monitor.observe(x)
        self.quality.served(served.version, served.threshold, proba)
        p, y = proba.tolist(), labels.tolist()
        ids = self.ids.issue(served.version, served.threshold, proba)
        self.shadow.offer(served, x, proba, ids)
        if self.inference_log is not None:
            self.inference_log.write(served.version, rows(x, served.spec), p, y, ids)
        if isinstance(payload, InferRequest):
            response: Any = InferResponse(
                response_id=payload.id or "",
                model_name=self.name,
                model_version=served.version,
                infer_outputs=[
                    InferOutput("churn_probability", [len(p)], "FP64", p),
                    InferOutput("churn", [len(y)], "INT64", y),
                    InferOutput("outside_training_range", [len(y)], "BYTES", [",".join(o) for o in outside]),
                    InferOutput("prediction_id", [len(y)], "BYTES", ids),
                ],
            )
            outputs: Any = {"churn_probability": p, "churn": y, "prediction_id": ids}
        else:
            response = {
                "predictions": [
                    {"churn": yi, "churn_probability": pi, "risk": ri, "outside_training_range": o, "prediction_id": i}
                    for pi, yi, ri, o, i in zip(p, y, risks(proba, served.threshold), outside, ids, strict=True)
                ],
                "model_version": served.version,
            }
            outputs = response
        self._trace(route, served, payload, outputs, start, t0, t1)
        return response

    async def explain(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        served = self._current()
        x = served.decoder.v1(_json(payload))
        base, phi = served.scorer.explain(x)
        proba = served.scorer.proba(x)
        names = served.spec.feature_names
        return {
            "model_version": served.version,
            "explanations": [
                {
                    "base_value": base,
                    "raw_score": base + float(phi[i].sum()),
                    "churn_probability": float(proba[i]),
                    "contributions": dict(zip(names, phi[i].tolist(), strict=True)),
                }
                for i in range(len(x))
            ],
        }

    def info(self) -> dict[str, Any]:
        """The model card for clients: the spec, version, threshold, metrics, curves, gate, presets, and where to
        read more (MLflow's version and run pages, the Grafana dashboard)."""
        served = self._current()
        mlflow_url = self.settings.mlflow_ui_url.rstrip("/") if self.settings.mlflow_ui_url else None
        experiment = served.info.get("experiment_id")  # absent from versions registered before it was recorded
        return {
            **served.info,
            "model_name": served.name,
            "model_version": served.version,
            "threshold": served.threshold,
            "risk_tiers": bounds(served.threshold),
            "spec": served.spec.public(),
            "input_schema": columns.json_schema(served.spec),
            "training_ranges": served.ranges,
            "run_id": served.run_id,
            "mlflow_url": f"{mlflow_url}/#/models/{served.name}/versions/{served.version}" if mlflow_url else None,
            "mlflow_run_url": f"{mlflow_url}/#/experiments/{experiment}/runs/{served.run_id}"
            if mlflow_url and experiment
            else None,
            "grafana_url": self.settings.grafana_url,
        }

    def monitoring(self) -> dict[str, Any]:
        """The served model's drift window, per feature (DriftMonitor.snapshot): this process's share of the
        traffic when there are several workers."""
        self._current()  # 503 while no model is loaded
        monitor = metrics.DRIFT.monitor
        if monitor is None:  # set by the first load just after the model
            raise kserve.errors.ModelNotReady(self.name)
        return monitor.snapshot()

    def feedback(self, body: Any) -> dict[str, Any]:
        """Outcomes of earlier predictions (any replica's, any version's): all counted, or none (4xx)."""
        outcomes, tags = parse_feedback(self.ids, body, self.settings.max_rows)
        if not self.ids.remember_all(tags):  # another request counted one of them meanwhile
            metrics.FEEDBACK.labels("replayed").inc(len(tags))
            raise RequestError("an outcome was counted meanwhile: nothing was counted", status=409, reason="feedback")
        self.quality.outcomes(outcomes)
        shadowed = self.shadow.outcomes(outcomes, tags)
        metrics.FEEDBACK.labels("accepted").inc(len(outcomes))
        counted: dict[str, int] = {}
        for o in outcomes:
            counted[o.version] = counted.get(o.version, 0) + 1
        return {"accepted": len(outcomes), "by_model_version": counted, "challenger_scored": shadowed}

    def quality_report(self) -> dict[str, Any]:
        """Realized and estimated quality per version (this process's share of the traffic and of the outcomes),
        beside the served version's test-split metrics."""
        served = self._current()
        s = self.settings
        test = _test_metrics(served)
        return {
            "model_name": served.name,
            "model_version": served.version,
            "threshold": served.threshold,
            "scope": "this process (the churnguard_quality_* series add up every replica)",
            "test": test,
            "challenger": self.shadow.report(),
            **report(self.quality.read(), served.version, test, s.quality_min_rows, s.quality_ece_tolerance),
        }

    def _trace(
        self,
        route: str,
        served: champion.Served,
        payload: Any,
        outputs: Any,
        start: int,
        t0: int,
        t1: int,
        error: str | None = None,
    ) -> None:
        if not self.tracer.sampled():
            return
        keep = self.settings.trace_max_rows  # a trace is for looking at, not an archive: bound what it carries
        if isinstance(payload, dict) and isinstance(payload.get("instances"), list):
            inputs: Any = {"instances": payload["instances"][:keep], "rows": len(payload["instances"])}
        elif isinstance(payload, InferRequest):
            inputs = {"v2_inputs": [i.name for i in payload.inputs]}
        else:
            inputs = {"body": "<not a JSON object with instances>"}
        if isinstance(outputs, dict):
            outputs = {k: v[:keep] if isinstance(v, list) else v for k, v in outputs.items()}
        self.tracer.submit(Record(route, served.version, inputs, outputs, start, t0, t1, time.time_ns(), error))


def _test_metrics(served: champion.Served) -> dict[str, float]:
    """The version's held-out metrics from its model card (versions trained before the calibration error was
    recorded have no "ece": their estimate is never marked as trusted)."""
    test = served.info.get("metrics") or {}
    return {k: float(test[k]) for k in ("f1", "roc_auc", "precision", "recall", "brier", "ece") if k in test}


def _json(payload: Any) -> Any:
    """KServe hands over raw bytes when the Content-Type is not JSON: parse them anyway, or say why not."""
    if isinstance(payload, bytes | bytearray):
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise RequestError(f"body is not JSON: {exc}", status=400, reason="malformed") from exc
    return payload
