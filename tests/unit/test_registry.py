"""The predictor's REST reading of an MLflow registry (predictor/registry.py), against a recorded MLflow server."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from predictor import registry
from predictor.registry import Credentials, RegistryError, RestRegistry, Version
from predictor.settings import PredictorSettings

MV = {"name": "churnguard", "version": "3", "run_id": "abc", "source": "models:/m-1"}
ROOT = "1/models/m-1/artifacts"


class Server:
    """MLflow's answers for one registered version whose artifacts the server proxies."""

    def __init__(self, artifact_uri: str = f"mlflow-artifacts:/{ROOT}") -> None:
        self.artifact_uri = artifact_uri
        self.files = {f"{ROOT}/extra_files/spec.yaml": b"spec", f"{ROOT}/extra_files/info.json": b"{}"}
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        path, q = request.url.path, request.url.params
        if path == "/api/2.0/mlflow/registered-models/alias":
            if q["alias"] != "champion":
                return error(400, "INVALID_PARAMETER_VALUE", f"Registered model alias {q['alias']} not found.")
            return httpx.Response(200, json={"model_version": MV})
        if path == "/api/2.0/mlflow/model-versions/get":
            return httpx.Response(200, json={"model_version": MV})
        if path == "/api/2.0/mlflow/model-versions/get-download-uri":
            return httpx.Response(200, json={"artifact_uri": self.artifact_uri})
        prefix = "/api/2.0/mlflow-artifacts/artifacts/"
        if path.startswith(prefix) and path[len(prefix) :] in self.files:
            return httpx.Response(200, content=self.files[path[len(prefix) :]])
        return error(404, "RESOURCE_DOES_NOT_EXIST", f"No such artifact: {path}")


def error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error_code": code, "message": message})


def rest(server: Any, credentials: Credentials | None = None) -> RestRegistry:
    return RestRegistry("http://mlflow:5000/", credentials or Credentials(), transport=httpx.MockTransport(server))


def test_an_alias_resolves_to_its_version_and_a_missing_one_to_none() -> None:
    r = rest(Server())
    assert r.by_alias("churnguard", "champion") == Version("churnguard", "3", "abc")
    assert r.by_alias("churnguard", "challenger") is None
    assert r.version("churnguard", "3").run_id == "abc"


def test_the_files_that_exist_are_downloaded_and_a_missing_one_is_skipped(tmp_path: Path) -> None:
    members = ["extra_files/spec.yaml", "extra_files/info.json", "extra_files/scorer.json"]
    folder = rest(Server()).files("churnguard", "3", members, tmp_path)
    assert (folder / "extra_files" / "spec.yaml").read_bytes() == b"spec"
    assert (folder / "extra_files" / "info.json").read_bytes() == b"{}"
    assert not (folder / "extra_files" / "scorer.json").exists()


def test_artifacts_the_server_does_not_proxy_go_through_mlflows_client(tmp_path: Path, monkeypatch) -> None:
    r = rest(Server(artifact_uri="s3://bucket/1/models/m-1/artifacts"))
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(r.fallback, "model", lambda name, version, dst: calls.append((name, version)) or dst)
    assert r.files("churnguard", "3", ["extra_files/spec.yaml"], tmp_path) == tmp_path
    assert calls == [("churnguard", "3")]


def test_a_server_error_is_a_registry_error_with_mlflows_message() -> None:
    r = rest(lambda request: error(503, "TEMPORARILY_UNAVAILABLE", "database is locked"))
    with pytest.raises(RegistryError, match="HTTP 503: database is locked") as raised:
        r.by_alias("churnguard", "champion")
    assert raised.value.code == "TEMPORARILY_UNAVAILABLE"


def test_an_unreachable_server_is_a_registry_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RegistryError, match="ConnectError: connection refused"):
        rest(refuse).by_alias("churnguard", "champion")


def test_mlflows_token_and_basic_auth_variables_are_sent_as_mlflow_sends_them() -> None:
    server = Server()
    rest(server, Credentials(token="t0k3n")).by_alias("churnguard", "champion")
    assert server.seen[-1].headers["authorization"] == "Bearer t0k3n"
    rest(server, Credentials(username="ana", password="s3cret")).by_alias("churnguard", "champion")
    assert server.seen[-1].headers["authorization"] == "Basic " + base64.b64encode(b"ana:s3cret").decode()


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({"MLFLOW_TRACKING_URI": "http://mlflow:5000"}, RestRegistry),
        ({"MLFLOW_TRACKING_URI": "https://mlflow.example"}, RestRegistry),
        ({"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}, registry.MlflowRegistry),
        ({}, registry.MlflowRegistry),
        ({"MLFLOW_TRACKING_URI": "http://mlflow:5000", "CHURN_REGISTRY_CLIENT": "mlflow"}, registry.MlflowRegistry),
        ({"MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLFLOW_TRACKING_AUTH": "plugin"}, registry.MlflowRegistry),
    ],
)
def test_rest_is_used_for_an_mlflow_server_and_mlflows_client_otherwise(
    env: dict[str, str], kind: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MLFLOW_TRACKING_URI", "CHURN_TRACKING_URI", "CHURN_REGISTRY_CLIENT", "MLFLOW_TRACKING_AUTH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert isinstance(registry.connect(PredictorSettings()), kind)


def test_the_settings_pass_mlflows_credentials_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0k3n")
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2.5")
    r = registry.connect(PredictorSettings())
    assert isinstance(r, RestRegistry)
    assert r.http.headers["authorization"] == "Bearer t0k3n"
    assert r.http.timeout.read == 2.5
    assert r.base == "https://mlflow.example"
