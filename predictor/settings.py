"""Settings of the predictor process: one typed object from CHURN_* variables (and MLFLOW_TRACKING_URI)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class PredictorSettings(BaseSettings):
    """Read once in `python -m predictor` and passed down; library modules never read the environment."""

    model_config = SettingsConfigDict(env_prefix="CHURN_", extra="ignore")

    model_name: str = Field(default="churnguard", pattern=r"^[a-z0-9][a-z0-9-]*$")
    """Served model name (URL path) and registered model name."""
    model_uri: str | None = None
    """MLflow model URI; unset means models:/<model_name>@champion (follows the alias)."""
    tracking_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "CHURN_TRACKING_URI")
    )
    """MLflow tracking server; unset means MLflow's own default (./mlruns)."""
    registry_client: Literal["auto", "mlflow"] = "auto"
    """How the registry is read. auto: MLflow's REST API on an http(s) tracking server (the serving process then
    never imports mlflow), MLflow's client for any other store or for MLFLOW_TRACKING_AUTH / client certificates;
    mlflow: always MLflow's client."""
    mlflow_tracking_token: SecretStr | None = Field(default=None, validation_alias="MLFLOW_TRACKING_TOKEN")
    """MLflow's own variable: bearer token for the tracking server."""
    mlflow_tracking_username: str | None = Field(default=None, validation_alias="MLFLOW_TRACKING_USERNAME")
    """MLflow's own variable: basic-auth user for the tracking server."""
    mlflow_tracking_password: SecretStr | None = Field(default=None, validation_alias="MLFLOW_TRACKING_PASSWORD")
    """MLflow's own variable: basic-auth password."""
    mlflow_tracking_insecure_tls: bool = Field(default=False, validation_alias="MLFLOW_TRACKING_INSECURE_TLS")
    """MLflow's own variable: skip TLS verification of the tracking server."""
    mlflow_tracking_server_cert_path: str | None = Field(
        default=None, validation_alias="MLFLOW_TRACKING_SERVER_CERT_PATH"
    )
    """MLflow's own variable: CA bundle that verifies the tracking server."""
    mlflow_http_request_timeout: float = Field(default=5.0, gt=0, validation_alias="MLFLOW_HTTP_REQUEST_TIMEOUT")
    """MLflow's own variable: seconds a registry call may take (the loader retries; liveness watches it)."""
    mlflow_tracking_auth: str | None = Field(default=None, validation_alias="MLFLOW_TRACKING_AUTH")
    """MLflow's own variable: an auth plugin; set, the registry is read with MLflow's client."""
    mlflow_tracking_client_cert_path: str | None = Field(
        default=None, validation_alias="MLFLOW_TRACKING_CLIENT_CERT_PATH"
    )
    """MLflow's own variable: a client certificate; set, the registry is read with MLflow's client."""
    host: str = "127.0.0.1"
    """Address the HTTP server binds (the Helm chart sets 0.0.0.0 inside the pod)."""
    reload_interval: float = Field(default=30.0, gt=0)
    """Seconds between checks of the alias (and between load retries while no model is loaded, with backoff)."""
    loader_stall_seconds: float = Field(default=600.0, gt=0)
    """Liveness fails when one load attempt (registry call or download) has run this long, or the loader died."""
    model_repository: bool = False
    """Serve KServe's model repository routes (POST /v2/repository/models/<name>/load and /unload). They carry no
    authentication: off unless an operator turns them on. Unload stops serving until the loader's next check (within
    one reload interval); load reloads the champion now."""
    max_rows: int = Field(default=1000, ge=1, le=65535)
    """Most instances one request may carry."""
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    """Largest request body accepted."""
    tracing: bool = True
    """Send one MLflow trace per request (exported off the request path)."""
    trace_sample_ratio: float = Field(default=0.1, ge=0, le=1)
    """Share of requests traced (bench/README.md: tracing every request cost ~60% of 1-row throughput)."""
    trace_max_per_second: float = Field(default=20.0, gt=0)
    """Most traces started per second, after sampling (a rate-limiting sampler): under heavy load tracing costs a
    bounded share of the CPU instead of a fixed share of every request."""
    trace_max_rows: int = Field(default=20, ge=1)
    """Rows of a request's inputs and outputs kept in its trace (the row count is always recorded)."""
    inference_log_dir: Path | None = None
    """Append served inputs and outputs as JSON lines here (unset: off)."""
    inference_log_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    """Share of rows written to the inference log."""
    inference_log_max_bytes: int = Field(default=10_000_000, ge=10_000)
    """Rotate the inference log file at this size."""
    drift_window: int = Field(default=500, ge=10)
    """Rows in the sliding window behind the live PSI per feature."""
    feedback_key: SecretStr | None = Field(default=None, min_length=16)
    """Key that signs prediction ids (the chart's Secret; at least 16 characters). Every replica needs the same key
    to count outcomes for ids another one issued. Unset: a random key of this process, so ids are counted here
    until it restarts and nowhere else (the predictor warns at start)."""
    feedback_key_file: Path | None = None
    """A file holding the signing key instead (the chart mounts its Secret there); read at start."""
    feedback_max_age_days: float = Field(default=365.0, gt=0)
    """Outcomes of predictions older than this are refused (churn labels come weeks or months later)."""
    feedback_remember: int = Field(default=200_000, ge=1000)
    """Prediction ids each process remembers as counted (a replay of one of them counts nothing); ~60 bytes each."""
    shadow_sample_ratio: float = Field(default=0.1, ge=0, le=1)
    """Share of requests also scored by the version the registry alias `challenger` names, off the request path
    (0: no shadow). Only while following the champion alias (CHURN_MODEL_URI unset)."""
    quality_min_rows: int = Field(default=200, ge=10)
    """Labelled rows needed before the live calibration error decides whether the estimated quality holds."""
    quality_ece_tolerance: float = Field(default=0.05, gt=0, le=1)
    """The estimate holds while the live calibration error is at most the test split's plus this."""
    mlflow_ui_url: str | None = None
    """Public MLflow UI base URL for links from the UI (unset: no links)."""
    grafana_url: str | None = None
    """Public URL of the Grafana dashboard the UI links to (unset: no link)."""
    workers: int = Field(default=1, ge=1)
    """HTTP worker processes (KServe's --workers); above 1, metrics use prometheus_client's multiprocess mode."""

    @model_validator(mode="after")
    def _key_from_file(self) -> PredictorSettings:
        if self.feedback_key_file is not None:
            if self.feedback_key is not None:
                raise ValueError("set CHURN_FEEDBACK_KEY or CHURN_FEEDBACK_KEY_FILE, not both")
            text = self.feedback_key_file.read_text(encoding="utf-8").strip()
            if len(text) < 16:
                raise ValueError(f"the feedback key in {self.feedback_key_file} must have at least 16 characters")
            self.feedback_key = SecretStr(text)
        return self

    @property
    def resolved_model_uri(self) -> str:
        return self.model_uri or f"models:/{self.model_name}@champion"
