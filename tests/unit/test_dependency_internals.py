"""The private APIs of scikit-learn, prometheus-client and KServe that the predictor relies on, checked by name and
signature. pyproject.toml holds these three to the minor releases tested here; when an upgrade moves one of these
internals, this file names the one that moved (the behavioural tests would only fail somewhere downstream)."""

from __future__ import annotations

import inspect
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.support import ROOT

pytestmark = pytest.mark.unit


def params(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


@pytest.mark.parametrize("dist", ["scikit-learn", "kserve", "prometheus-client"])
def test_installed_version_is_inside_the_narrowed_range(dist: str) -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["serve"]]
    (req,) = [r for r in reqs if r.name == dist]
    assert Version(version(dist)) in req.specifier
    upper = [s for s in req.specifier if s.operator == "<"]
    lower = [s for s in req.specifier if s.operator == ">="]
    assert upper and lower, f"{dist} must be held to one minor release: {req.specifier}"
    lo, hi = Version(lower[0].version), Version(upper[0].version)
    assert (hi.major, hi.minor) == (lo.major, lo.minor + 1), f"{dist}: {req.specifier} spans several minor releases"


def test_sklearn_gradient_boosting_internals() -> None:
    """What contract/scoring.py reads of a fitted GradientBoostingClassifier to write its scorer file: the initial
    raw score (`_raw_predict_init`), the log-loss object (`_loss`, whose probabilities are SciPy's expit of the raw
    score), and each tree's node arrays."""
    from scipy.special import expit
    from sklearn._loss.loss import HalfBinomialLoss
    from sklearn.ensemble import GradientBoostingClassifier

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    gbm = GradientBoostingClassifier(n_estimators=3, max_depth=1, random_state=0).fit(x, y)
    init = gbm._raw_predict_init(x.astype(np.float32))
    assert init.shape == (4, 1)
    assert isinstance(gbm._loss, HalfBinomialLoss)
    raw = gbm.decision_function(x)
    assert np.array_equal(gbm.predict_proba(x)[:, 1], expit(raw))
    tree = gbm.estimators_[0, 0].tree_
    for attr in ("children_left", "children_right", "feature", "threshold", "weighted_n_node_samples", "node_count"):
        assert hasattr(tree, attr), attr
    assert tree.value.ndim == 3
    walked = init[:, 0].astype(np.float64)
    for est in gbm.estimators_[:, 0]:  # each stage adds learning_rate x the leaf value, in stage order
        t = est.tree_
        leaf = np.where(x[:, 0].astype(np.float32) <= t.threshold[0], t.children_left[0], t.children_right[0])
        walked = walked + gbm.learning_rate * t.value[leaf, 0, 0]
    assert np.array_equal(walked, raw)


def test_prometheus_client_histogram_and_registry_internals() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    registry = CollectorRegistry()
    hist = Histogram("h", "h", buckets=[1.0, 2.0], registry=registry)
    assert list(hist._upper_bounds) == [1.0, 2.0, float("inf")]
    assert len(hist._buckets) == 3 and all(hasattr(b, "inc") for b in hist._buckets)
    hist._buckets[1].inc(2)
    hist._sum.inc(3.0)
    assert registry.get_sample_value("h_bucket", {"le": "2.0"}) == 2
    assert registry.get_sample_value("h_sum") == 3.0
    assert hist in registry._collector_to_names


def test_kserve_server_internals() -> None:
    import kserve.model_server
    from kserve.model_server import ModelServer
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.rest.multiprocess import server as multiprocess
    from kserve.protocol.rest.server import RESTServer

    assert isinstance(kserve.model_server.FASTAPI_APP_IMPORT_STRING, str)
    assert hasattr(kserve.model_server, "app") and hasattr(kserve.model_server, "parser")
    for method in ("_add_exception_handlers", "_add_middlewares", "start", "run"):
        assert callable(getattr(RESTServer, method)), method
    assert params(RESTServer.__init__)[1:5] == ["app", "data_plane", "model_repository_extension", "http_port"]
    for kw in ("access_log_format", "workers", "grace_period", "event_loop", "timeout_keep_alive"):
        assert kw in params(RESTServer.__init__), kw
    assert params(DataPlane.__init__)[1] == "model_registry"
    for method in ("setup_event_loop", "register_signal_handler", "_serve", "register_model"):
        assert callable(getattr(ModelServer, method)), method
    server = ModelServer(http_port=0, grpc_port=0, workers=1, enable_grpc=False)
    for attr in (
        "registered_models", "servers", "workers", "http_port", "grpc_port", "model_repository_extension",
        "access_log_format", "grace_period", "event_loop", "timeout_keep_alive", "enable_grpc", "max_threads",
        "enable_latency_logging",
    ):  # fmt: skip
        assert hasattr(server, attr), attr
    assert params(multiprocess.RESTServerProcess.__init__)[1:] == ["sockets", "target", "log_config_file"]
    for method in ("init_processes", "keep_subprocess_alive", "start"):
        assert callable(getattr(multiprocess.RESTServerMultiProcess, method)), method
    source = inspect.getsource(multiprocess)
    for attr in ("self._processes", "self._rest_server", "self.should_exit", "self.log_config_file", "self._process"):
        assert attr in source, attr


def test_kserve_needs_only_kserveclient_from_its_kubernetes_client_module() -> None:
    """Serving processes replace `kserve.api.kserve_client` with a module holding only a `KServeClient` that refuses
    (predictor/__main__.py `_KeptOut`): KServe's package must import nothing else from it, and the serving imports
    must not reach the `kubernetes` package another way. A fresh interpreter, as `python -m predictor` starts."""
    import ast
    import subprocess
    import sys
    from importlib.util import find_spec

    spec = find_spec("kserve")
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    wanted = [
        [a.name for a in node.names]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("kserve_client")
    ]
    assert wanted == [["KServeClient"]], wanted
    code = (
        "import sys, predictor.__main__, kserve, kserve.model_server, predictor.model, predictor.server, "
        "predictor.hot\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))\n"
        "try:\n    kserve.KServeClient()\nexcept RuntimeError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    modules, refusal = out.stdout.splitlines()
    assert modules == "[]", modules
    assert "kept out of serving processes" in refusal


def test_kserve_model_call_is_what_the_hot_routes_replay() -> None:
    """predictor/hot.py calls ChurnModel.predict itself and observes KServe's request_* histograms as
    `Model.__call__` would: that holds while ChurnModel keeps KServe's identity preprocess, postprocess and validate,
    and while `__call__` times exactly those three steps around predict with these histograms."""
    import kserve
    from kserve import metrics as kserve_metrics

    from predictor.model import ChurnModel

    for step in ("preprocess", "postprocess", "validate", "__call__"):
        assert getattr(ChurnModel, step) is getattr(kserve.Model, step), f"ChurnModel overrides {step}"

    def finished(coro: Any) -> Any:  # the coroutine's result; no event loop (another test may have one running)
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value
        raise AssertionError("the coroutine waited for something")

    model = kserve.Model("m")
    body = {"instances": [1]}
    assert finished(model.preprocess(body)) is body
    assert finished(model.postprocess(body)) is body
    assert model.validate(body) is body
    source = inspect.getsource(kserve.Model.__call__)
    for name in ("PRE_HIST_TIME", "PREDICT_HIST_TIME", "POST_HIST_TIME", "get_labels", "trace_logger"):
        assert name in source, name
        assert hasattr(kserve_metrics, name) or name == "trace_logger", name
    assert kserve_metrics.get_labels("m") == {"model_name": "m"}
