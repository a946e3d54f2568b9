"""The chart's pods as containers on one private network, in the order a fresh install brings them up:
training Job waiting for MLflow, the predictor without a champion, MLflow, training to a champion, the
predictor turning ready, the UI, the helm test pod, Prometheus scraping the predictor. Each container runs
the rendered spec (tests/containers/pods.py); the tests look inside them and at what they serve."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from monitoring import prometheus
from tests.chart.render import NAMESPACE, RELEASE
from tests.conftest import DATA_PATH
from tests.containers.conftest import REPORT
from tests.containers.forward import port_forward
from tests.containers.pods import Cluster, Pod, PodRun, docker
from tests.support import free_port, running, wait_http, without_ids

MODEL = "churnguard"
MLFLOW, PREDICTOR = f"{RELEASE}-mlflow", f"{RELEASE}-predictor"
UI, HELM_TEST = f"{RELEASE}-ui", f"{RELEASE}-test-predict"
TRAINING = "training"  # the Job's key in `runs` (its name carries a hash of its pod spec)
MIB = 2**20


@pytest.fixture(scope="module")
def cluster(manifests: list[dict[str, Any]], images: dict[str, str], workdir: Path) -> Iterator[Cluster]:
    started = time.monotonic()
    # The predictor's Service is KServe's, created once it reconciles the InferenceService: not there at first.
    deferred = frozenset({PREDICTOR})
    with Cluster(
        manifests, namespace=NAMESPACE, workdir=workdir, forward_image=images["serve"], deferred_services=deferred
    ) as c:
        yield c
        REPORT["stack_s"] = round(time.monotonic() - started)
        for name in c.containers:
            if name in c.memory.limit and name in c.memory.peak:
                REPORT["memory"][name.removeprefix(f"{c.network}-")] = {
                    "peak_mib": c.memory.peak[name] / MIB,
                    "rss_mib": c.memory.peak_rss[name] / MIB,
                    "limit_mib": c.memory.limit[name] / MIB,
                }
        logs = workdir / "logs"
        logs.mkdir(exist_ok=True)
        for name in c.containers:
            (logs / f"{name}.log").write_text(c.logs(name))


@pytest.fixture(scope="module")
def runs() -> dict[str, PodRun]:
    return {}


def url(cluster: Cluster, run: PodRun, container: str | None = None, port: int | str | None = None) -> str:
    spec = run.pod.container(container)
    number = run.pod.port(spec, port if port is not None else spec["ports"][0]["containerPort"])
    return f"http://{cluster.ip(run.names[spec['name']])}:{number}"


def assert_locked_down(cluster: Cluster, name: str, pod: Pod, container: dict[str, Any]) -> None:
    """Inside the running container: the pod's UID and groups, a read-only root, no capabilities, no new privileges."""
    status = cluster.exec(name, "cat", "/proc/1/status")
    assert status.returncode == 0, f"{name} is not running: {status.stderr}\n{cluster.logs(name)[-2000:]}"
    fields = dict(line.split(":", 1) for line in status.stdout.splitlines() if ":" in line)
    ctx = {**pod.spec["securityContext"], **container["securityContext"]}
    assert fields["Uid"].split() == [str(ctx["runAsUser"])] * 4
    assert fields["Gid"].split() == [str(ctx["runAsGroup"])] * 4
    assert str(pod.spec["securityContext"]["fsGroup"]) in fields["Groups"].split()
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0 and int(fields["CapBnd"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    for path in ("/probe", "/etc/probe", "/opt/probe"):
        write = cluster.exec(name, "sh", "-c", f"echo x > {path}")
        assert write.returncode != 0 and "Read-only file system" in write.stderr, (path, write.stderr)
    empty_dirs = {v["name"] for v in pod.spec.get("volumes", []) if "emptyDir" in v}
    for mount in container.get("volumeMounts", []):
        if mount["name"] in empty_dirs:  # where the pod may write
            probe = f"{mount['mountPath']}/probe"
            assert cluster.exec(name, "sh", "-c", f"echo x > {probe} && rm {probe}").returncode == 0, probe


def wait_status(target: str, status: int, timeout: float, **kw: Any) -> requests.Response:
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            r = requests.get(target, timeout=3, **kw)
            if r.status_code == status:
                return r
            last = f"HTTP {r.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    raise AssertionError(f"{target} did not answer {status} within {timeout:.0f} s ({last})")


def wait_log(cluster: Cluster, name: str, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in cluster.logs(name):
        assert time.monotonic() < deadline, f"{text!r} not logged by {name}:\n{cluster.logs(name)[-3000:]}"
        time.sleep(0.5)


def test_training_job_waits_for_mlflow_in_its_init_container(cluster: Cluster, runs: dict[str, PodRun]) -> None:
    (job,) = [p for p in cluster.pods.values() if p.kind == "Job"]
    runs[TRAINING] = run = cluster.start_pod(job.name)
    (init,) = run.pod.spec["initContainers"]
    name = run.running(init["name"])
    wait_log(cluster, name, "waiting for http://churnguard-mlflow.churnguard.svc:5000/health", timeout=60)
    assert_locked_down(cluster, name, run.pod, init)
    assert "training" not in run.names  # the Job's container waits for its init container


def test_predictor_is_live_but_not_ready_without_a_registry(cluster: Cluster, runs: dict[str, PodRun]) -> None:
    runs[PREDICTOR] = run = cluster.start_pod(PREDICTOR)
    run.wait_started()
    base = url(cluster, run)
    wait_status(f"{base}/v2/health/live", 200, timeout=120)
    assert requests.get(f"{base}/v2/health/ready", timeout=5).status_code == 503
    assert requests.get(f"{base}/v1/models/{MODEL}", timeout=5).status_code == 503
    assert_locked_down(cluster, run.names["kserve-container"], run.pod, run.pod.container())
    wait_log(cluster, run.names["kserve-container"], "cannot reach the model registry", timeout=60)


def test_ui_starts_before_the_predictor_service_exists(cluster: Cluster, runs: dict[str, PodRun]) -> None:
    """nginx resolves the predictor's name per request: it starts without it, answers 502 JSON, then proxies
    once KServe has created the Service."""
    runs[UI] = ui = cluster.start_pod(UI)
    ui.wait_started()
    base = url(cluster, ui)
    wait_status(f"{base}/healthz", 200, timeout=60)
    down = requests.post(f"{base}/v1/models/{MODEL}:predict", json={"instances": []}, timeout=30)
    assert down.status_code == 502 and down.json()["error"] == "The predictor is unreachable.", down.text
    cluster.start_service(PREDICTOR)
    wait_status(f"{base}/v2/health/live", 200, timeout=60)
    assert_locked_down(cluster, ui.names["nginx"], ui.pod, ui.pod.container())


def test_mlflow_starts_and_the_training_job_registers_a_champion(cluster: Cluster, runs: dict[str, PodRun]) -> None:
    runs[MLFLOW] = mlflow_run = cluster.start_pod(MLFLOW)
    mlflow_run.wait_started()
    name = mlflow_run.names["mlflow"]
    wait_status(f"{url(cluster, mlflow_run)}/health", 200, timeout=120)
    assert_locked_down(cluster, name, mlflow_run.pod, mlflow_run.pod.container())
    # The job runner is off: one server process tree without huey consumers.
    processes = cluster.exec(name, "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo").stdout
    assert "huey" not in processes, processes

    training = runs[TRAINING]
    training.wait_started(timeout=300)
    train_name = training.names["training"]
    assert_locked_down(cluster, train_name, training.pod, training.pod.container())
    code = cluster.wait_exit(train_name, timeout=900)
    logs = cluster.logs(train_name)
    assert code == 0, logs[-4000:]
    with port_forward(cluster.ip(name), 5000) as mlflow_url:
        alias = requests.get(
            f"{mlflow_url}/api/2.0/mlflow/registered-models/alias",
            params={"name": MODEL, "alias": "champion"},
            timeout=10,
        )
    assert alias.status_code == 200, alias.text
    assert alias.json()["model_version"]["version"] == "1"


def test_predictor_turns_ready_and_predicts_exactly_like_the_registered_model(
    cluster: Cluster, runs: dict[str, PodRun]
) -> None:
    base = url(cluster, runs[PREDICTOR])
    wait_status(f"{base}/v2/health/ready", 200, timeout=120)
    rows = pd.read_csv(DATA_PATH).drop(columns=["churn"]).head(25)
    v1 = requests.post(f"{base}/v1/models/{MODEL}:predict", json={"instances": rows.to_dict("records")}, timeout=10)
    assert v1.status_code == 200, v1.text
    v2_body = {
        "inputs": [
            {"name": c, "shape": [len(rows)], "datatype": "FP64" if rows[c].dtype.kind == "f" else "INT64",
             "data": rows[c].tolist()}
            for c in rows.columns
        ]
    }  # fmt: skip
    v2 = requests.post(f"{base}/v2/models/{MODEL}/infer", json=v2_body, timeout=10)
    assert v2.status_code == 200, v2.text
    outputs = {o["name"]: o["data"] for o in v2.json()["outputs"]}

    with port_forward(cluster.ip(runs[MLFLOW].names["mlflow"]), 5000) as mlflow_url:
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(mlflow_url)
        try:
            pipeline = mlflow.sklearn.load_model(f"models:/{MODEL}@champion")
        finally:
            mlflow.set_tracking_uri(previous)
    expected = pipeline.predict_proba(rows)[:, 1]
    assert np.array_equal([p["churn_probability"] for p in v1.json()["predictions"]], expected)
    assert np.array_equal(outputs["churn_probability"], expected)


def test_every_declared_probe_answers_in_the_running_containers(cluster: Cluster, runs: dict[str, PodRun]) -> None:
    checked = []
    for pod_name in (MLFLOW, PREDICTOR, UI):
        run = runs[pod_name]
        for container in run.pod.spec["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in container:
                    get = container[probe]["httpGet"]
                    target = f"{url(cluster, run, container['name'], get['port'])}{get['path']}"
                    wait_status(target, 200, timeout=60)
                    checked.append((pod_name, probe))
    assert {p for p, _ in checked} == {MLFLOW, PREDICTOR, UI}


def test_ui_container_serves_the_app_and_proxies_a_prediction(cluster: Cluster, runs: dict[str, PodRun]) -> None:
    base = url(cluster, runs[UI])
    page = requests.get(f"{base}/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    for header in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"):
        assert header in page.headers, header
    row = pd.read_csv(DATA_PATH).drop(columns=["churn"]).head(1).to_dict("records")
    direct = requests.post(
        f"{url(cluster, runs[PREDICTOR])}/v1/models/{MODEL}:predict", json={"instances": row}, timeout=10
    )
    proxied = requests.post(f"{base}/v1/models/{MODEL}:predict", json={"instances": row}, timeout=10)
    assert proxied.status_code == 200, proxied.text
    assert without_ids(proxied.json()) == without_ids(direct.json())
    assert proxied.headers["Cache-Control"] == "no-store" and "X-Content-Type-Options" in proxied.headers
    # The outcome of the direct prediction, through the UI: the predictor read its key from the mounted Secret.
    outcome = {"outcomes": [{"prediction_id": direct.json()["predictions"][0]["prediction_id"], "label": 0}]}
    fed = requests.post(f"{base}/v1/models/{MODEL}/feedback", json=outcome, timeout=10)
    assert fed.status_code == 200 and fed.json()["accepted"] == 1, fed.text
    assert requests.get(f"{base}/metrics", timeout=5).status_code == 404  # only /v1 and /v2 are proxied

    # The Service recreated with another address: nginx follows it once its DNS answer expires (valid=10s).
    service = f"{cluster.network}-svc-{PREDICTOR}"
    old_ip = cluster.ip(service)
    assert cluster.ip(cluster.start_service(PREDICTOR, generation=1)) != old_ip
    cluster.remove(service)
    deadline = time.monotonic() + 60
    while True:
        again = requests.post(f"{base}/v1/models/{MODEL}:predict", json={"instances": row}, timeout=10)
        if again.status_code == 200:
            break
        assert time.monotonic() < deadline, again.text
        time.sleep(1)
    assert without_ids(again.json()) == without_ids(direct.json())


def test_helm_test_pod_passes(cluster: Cluster, runs: dict[str, PodRun]) -> None:
    runs[HELM_TEST] = run = cluster.start_pod(HELM_TEST)
    run.wait_started()
    name = run.names["predict-through-ui"]
    code = cluster.wait_exit(name, timeout=120)
    assert code == 0, cluster.logs(name)
    assert "predict through the UI:" in cluster.logs(name)
    # Too short-lived to look inside: its runtime settings are the pod spec's.
    host = cluster.inspect(name)["HostConfig"]
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and "no-new-privileges:true" in host["SecurityOpt"]


def test_prometheus_scrapes_the_predictor_container_as_the_pod_monitor_says(
    cluster: Cluster, runs: dict[str, PodRun], manifests: list[dict[str, Any]], workdir: Path
) -> None:
    monitor = next(o for o in manifests if o["kind"] == "PodMonitor")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    run = runs[PREDICTOR]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= run.pod.labels.items()
    target = url(cluster, run, port=endpoint["port"]).removeprefix("http://")
    assert endpoint.get("path", "/metrics") == "/metrics"  # the path the local Prometheus config scrapes
    home = workdir / "prometheus"
    home.mkdir()
    config = home / "prometheus.yml"
    config.write_text(prometheus.config(target, prometheus.RULES, "1s"))
    port = free_port()
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    with running(prometheus.command(binary, config, home, port), log=home / "log", ready_url=None):
        api = f"http://127.0.0.1:{port}"
        wait_http(f"{api}/-/ready", timeout=60)
        deadline = time.monotonic() + 60
        while True:
            result = requests.get(
                f"{api}/api/v1/query", params={"query": "churnguard_model_loaded * on(instance) up"}, timeout=5
            ).json()["data"]["result"]
            if result and float(result[0]["value"][1]) == 1.0:
                break
            assert time.monotonic() < deadline, result
            time.sleep(1)
        assert result[0]["metric"]["instance"] == target


def test_predictor_killed_mid_load_comes_back_ready_on_its_own(cluster: Cluster, runs: dict[str, PodRun]) -> None:
    run, mlflow_name = runs[PREDICTOR], runs[MLFLOW].names["mlflow"]
    name = run.names["kserve-container"]
    docker("pause", mlflow_name)  # the registry hangs: the restarted predictor is stuck loading the champion
    try:
        docker("restart", "--time", "0", name)
        base = url(cluster, run)
        wait_status(f"{base}/v2/health/live", 200, timeout=120)
        assert requests.get(f"{base}/v2/health/ready", timeout=5).status_code == 503
        docker("kill", name)  # mid-load, as an OOM kill or a node failure would
        docker("start", name)  # what the kubelet does for restartPolicy Always
    finally:
        docker("unpause", mlflow_name)
    base = url(cluster, run)
    wait_status(f"{base}/v2/health/ready", 200, timeout=120)
    row = pd.read_csv(DATA_PATH).drop(columns=["churn"]).head(1).to_dict("records")
    r = requests.post(f"{base}/v1/models/{MODEL}:predict", json={"instances": row}, timeout=10)
    assert r.status_code == 200, r.text


def test_no_container_was_oom_killed_and_mlflow_outlived_its_first_minute(
    cluster: Cluster, runs: dict[str, PodRun]
) -> None:
    name = runs[MLFLOW].names["mlflow"]
    started = cluster.inspect(name)["State"]["StartedAt"]
    # MLflow with its job runner was OOM-killed about a minute after start under the chart's 1Gi limit.
    started_s = pd.Timestamp(re.sub(r"\.(\d{6})\d*", r".\1", started)).timestamp()
    time.sleep(max(0.0, started_s + 90 - time.time()))
    for container in cluster.containers:
        state = cluster.inspect(container)["State"]
        assert not state["OOMKilled"], container
    assert cluster.inspect(name)["State"]["Running"] and cluster.inspect(name)["RestartCount"] == 0
    for container, limit in cluster.memory.limit.items():
        if limit and container in cluster.memory.peak:
            assert cluster.memory.peak[container] < limit, (container, cluster.memory.peak[container], limit)
