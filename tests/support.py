"""Helpers for tests that run real processes on loopback: free ports, start-and-wait, clean shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, *, timeout: float, proc: subprocess.Popen[bytes] | None = None, status: int = 200) -> None:
    """Poll `url` until it answers `status`; fail early if `proc` exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            r = requests.get(url, timeout=2)
            if r.status_code == status:
                return
            last = f"HTTP {r.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer {status} within {timeout:.0f} s ({last})")


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def metric(url: str, line_start: str) -> float:
    """The value of the first line of `url`/metrics that starts with `line_start` (0 when there is none)."""
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    log: Path,
    ready_url: str | None = None,
    timeout: float = 60,
    status: int = 200,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `cmd` (output to `log`), wait for `ready_url`, and always stop it afterwards."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        if ready_url:
            try:
                wait_http(ready_url, timeout=timeout, proc=proc, status=status)
            except (RuntimeError, TimeoutError) as exc:
                raise RuntimeError(f"{exc}\n--- {log} ---\n{log.read_text()[-3000:]}") from exc
        yield proc
    finally:
        stop(proc)


def mlflow_server_cmd(home: Path, port: int) -> list[str]:
    """`mlflow server` as the chart runs it: sqlite, proxied artifacts, no job runner (seven huey consumers)."""
    return [
        "env",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false",
        str(Path(PYTHON).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination",
        str(home / "artifacts"),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]


@contextmanager
def serving_mlflow(home: Path) -> Iterator[str]:
    """A real `mlflow server` (mlflow_server_cmd) on a free loopback port, stopped on exit; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(mlflow_server_cmd(home, port), log=home / "server.log", ready_url=f"{url}/health", timeout=90):
        yield url


def train(
    tracking_uri: str, home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m training run` (or another subcommand via args) against `tracking_uri`."""
    cmd = [PYTHON, "-m", "training", *(args or ("run",))]
    full_env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "CHURN_HOME": str(home), **(env or {})}
    if not tracking_uri:
        full_env.pop("MLFLOW_TRACKING_URI")
    return subprocess.run(cmd, env=full_env, capture_output=True, text=True, cwd=ROOT, timeout=600)


def train_challenger(tracking_uri: str, home: Path, model: str) -> str:
    """A logistic version trained with CHURN_ALIAS=challenger and a lenient gate: it passes, gets the
    `challenger` alias, and `champion` stays where it was."""
    import mlflow  # only the tests that train one pay for the import

    client = mlflow.MlflowClient(tracking_uri)
    champion_before = client.get_model_version_by_alias(model, "champion").version
    result = train(
        tracking_uri,
        home,
        env={
            "CHURN_MODEL_FAMILY": "logistic",
            "CHURN_ALIAS": "challenger",
            "CHURN_GATE_MIN_ROC_AUC": "0.5",
            "CHURN_GATE_MIN_F1": "0.1",
            "CHURN_GATE_MAX_DROP": "1",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    latest = str(max(int(v.version) for v in client.search_model_versions(f"name='{model}'")))
    assert "moved alias 'challenger' to it" in result.stdout and "python -m training promote" in result.stdout
    assert client.get_model_version_by_alias(model, "challenger").version == latest
    assert client.get_model_version_by_alias(model, "champion").version == champion_before != latest
    return latest


def without_ids(body: dict[str, Any]) -> dict[str, Any]:
    """A V1 answer without its prediction ids (unique per answer), to compare two answers' predictions."""
    return {**body, "predictions": [{k: v for k, v in p.items() if k != "prediction_id"} for p in body["predictions"]]}
