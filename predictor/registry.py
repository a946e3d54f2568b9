"""The model registry as the predictor reads it. On an MLflow server (an http(s) tracking URI, artifacts proxied by
the server) it speaks MLflow's REST API itself, so the serving process never imports the mlflow package (~35 MB
and ~3 s of start-up, bench/README.md); any other store, or a server that does not proxy the version's artifacts,
goes through MLflow's own client, imported then."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

if TYPE_CHECKING:
    from predictor.settings import PredictorSettings

ARTIFACTS_SCHEME = "mlflow-artifacts:"
"""Artifacts the tracking server proxies (`mlflow server --serve-artifacts`): readable over its REST API."""
ABSENT = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
"""MLflow's error codes for a model or alias that does not exist."""


class RegistryError(RuntimeError):
    """The registry answered with an error (or not at all); `code` is MLflow's error code when it sent one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Version:
    name: str
    version: str
    run_id: str


class Registry(Protocol):
    def by_alias(self, name: str, alias: str) -> Version | None:
        """The version the alias names; None when the model or the alias does not exist."""

    def version(self, name: str, version: str) -> Version:
        """One version (raises RegistryError when it does not exist)."""

    def files(self, name: str, version: str, members: Sequence[str], dst: Path) -> Path:
        """A folder holding those of the version's model files (paths inside the model folder) that exist."""

    def model(self, name: str, version: str, dst: Path) -> Path:
        """The version's whole model folder (for a family served from its pipeline)."""


@dataclass(frozen=True)
class Credentials:
    """MLflow's client settings for a tracking server, as MLflow reads them (MLFLOW_TRACKING_TOKEN and so on)."""

    token: str | None = None
    username: str | None = None
    password: str | None = None
    insecure_tls: bool = False
    server_cert_path: str | None = None


class RestRegistry:
    """MLflow's registry and proxied-artifact REST routes (the ones MlflowClient and download_artifacts call)."""

    def __init__(
        self,
        tracking_uri: str,
        credentials: Credentials,
        *,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base = tracking_uri.rstrip("/")
        c = credentials
        headers = {"Authorization": f"Bearer {c.token}"} if c.token else {}
        auth = (c.username, c.password or "") if c.username and not c.token else None
        verify: bool | str = c.server_cert_path or not c.insecure_tls
        self.http = httpx.Client(headers=headers, auth=auth, verify=verify, timeout=timeout, transport=transport)
        self.fallback = MlflowRegistry()

    def _get(self, route: str, **params: str) -> httpx.Response:
        try:
            answer = self.http.get(f"{self.base}{route}", params=params)
        except httpx.HTTPError as exc:
            raise RegistryError(f"GET {route}: {type(exc).__name__}: {exc}") from exc
        if answer.status_code != 200:
            try:
                body: Any = answer.json()
            except ValueError:
                body = {}
            code = body.get("error_code") if isinstance(body, dict) else None
            message = body.get("message") if isinstance(body, dict) else None
            raise RegistryError(f"GET {route}: HTTP {answer.status_code}: {message or answer.text[:200]}", code)
        return answer

    def by_alias(self, name: str, alias: str) -> Version | None:
        try:
            found = self._get("/api/2.0/mlflow/registered-models/alias", name=name, alias=alias).json()
        except RegistryError as exc:
            if exc.code in ABSENT:
                return None
            raise
        return _version(found["model_version"])

    def version(self, name: str, version: str) -> Version:
        return _version(
            self._get("/api/2.0/mlflow/model-versions/get", name=name, version=version).json()["model_version"]
        )

    def files(self, name: str, version: str, members: Sequence[str], dst: Path) -> Path:
        uri = self._get("/api/2.0/mlflow/model-versions/get-download-uri", name=name, version=version).json()
        location = str(uri["artifact_uri"])
        if not location.startswith(ARTIFACTS_SCHEME) or location.startswith(f"{ARTIFACTS_SCHEME}//"):
            return self.fallback.files(name, version, members, dst)  # stored elsewhere (s3://, ...): MLflow's client
        root = location.removeprefix(ARTIFACTS_SCHEME).strip("/")
        for member in members:
            try:
                answer = self._get(f"/api/2.0/mlflow-artifacts/artifacts/{root}/{member}")
            except RegistryError as exc:
                if exc.code == "RESOURCE_DOES_NOT_EXIST":
                    continue
                raise
            path = dst / member
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(answer.content)
        return dst

    def model(self, name: str, version: str, dst: Path) -> Path:
        return self.fallback.model(name, version, dst)


class MlflowRegistry:
    """MLflow's own client (the tracking URI and credentials from MLflow's environment variables)."""

    def by_alias(self, name: str, alias: str) -> Version | None:
        import mlflow

        try:
            mv = mlflow.MlflowClient().get_model_version_by_alias(name, alias)
        except mlflow.exceptions.MlflowException as exc:
            if exc.error_code in ABSENT:
                return None
            raise
        return Version(name, str(mv.version), str(mv.run_id or ""))

    def version(self, name: str, version: str) -> Version:
        import mlflow

        try:
            mv = mlflow.MlflowClient().get_model_version(name, version)
        except mlflow.exceptions.MlflowException as exc:
            raise RegistryError(f"{name} version {version}: {exc}", exc.error_code) from exc
        return Version(name, str(mv.version), str(mv.run_id or ""))

    def files(self, name: str, version: str, members: Sequence[str], dst: Path) -> Path:
        return self.model(name, version, dst)

    def model(self, name: str, version: str, dst: Path) -> Path:
        import mlflow

        tmp = Path(tempfile.mkdtemp(dir=dst))
        return Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(tmp)))


def _version(mv: dict[str, Any]) -> Version:
    return Version(str(mv["name"]), str(mv["version"]), str(mv.get("run_id") or ""))


def connect(settings: PredictorSettings) -> Registry:
    """The REST client for an http(s) tracking server, MLflow's client for anything else (or when asked for, or
    when MLflow's client would authenticate in a way this one does not: an auth plugin, a client certificate)."""
    s = settings
    uri = s.tracking_uri or ""
    rest = (
        s.registry_client == "auto"
        and uri.startswith(("http://", "https://"))
        and not s.mlflow_tracking_auth
        and not s.mlflow_tracking_client_cert_path
    )
    if not rest:
        return MlflowRegistry()
    credentials = Credentials(
        token=s.mlflow_tracking_token.get_secret_value() if s.mlflow_tracking_token else None,
        username=s.mlflow_tracking_username,
        password=s.mlflow_tracking_password.get_secret_value() if s.mlflow_tracking_password else None,
        insecure_tls=s.mlflow_tracking_insecure_tls,
        server_cert_path=s.mlflow_tracking_server_cert_path,
    )
    return RestRegistry(uri, credentials, timeout=s.mlflow_http_request_timeout)
