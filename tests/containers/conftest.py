"""Fixtures of the container tier: a Docker engine (started here when this is root and none runs), the three
images built on local Debian bases (k8s/local-images.sh), and the chart rendered for them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chart.render import NAMESPACE, render_chart
from tests.containers.pods import DOCKER, LABEL, docker
from tests.support import ROOT

OUT = ROOT / "test-output" / "containers"
IMAGES = ("serve", "train", "ui")
REPORT: dict[str, Any] = {"images": {}, "memory": {}}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if f"{os.sep}containers{os.sep}" in str(item.fspath):
            item.add_marker(pytest.mark.containers)


def _engine_answers() -> bool:
    try:
        return docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _start_engine() -> str | None:
    """None when an engine answers (started here if need be), else why not."""
    if shutil.which(DOCKER) is None:
        return "no docker client (Debian docker.io; .ci/system-deps installs it)"
    if _engine_answers():
        return None
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if os.geteuid() != 0 or not Path(dockerd).exists():
        return f"no Docker engine answers and none can be started here (root: {os.geteuid() == 0}, dockerd: {dockerd})"
    OUT.mkdir(parents=True, exist_ok=True)
    log = (OUT / "dockerd.log").open("ab")
    subprocess.Popen([dockerd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _engine_answers():
            return None
        time.sleep(1)
    return f"dockerd did not answer within 60 s (log: {OUT / 'dockerd.log'})"


@pytest.fixture(scope="session")
def engine() -> None:
    reason = _start_engine()
    if reason:
        print(f"\ncontainer tier skipped: {reason}")
        pytest.skip(f"container tier: {reason}")
    for kind in ("container", "network"):  # leftovers of an interrupted run
        ids = docker(kind, "ls", "-q", "--filter", f"label={LABEL}", *(["-a"] if kind == "container" else [])).stdout
        if ids.split():
            docker(kind, "rm", *(["-f"] if kind == "container" else []), *ids.split(), check=False)


@pytest.fixture(scope="session")
def images(engine: None) -> dict[str, str]:
    """The serve, train and ui images, built (or reused while their inputs are unchanged) on local bases."""
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        pytest.skip("container tier: the local Debian base needs root and debootstrap (.ci/system-deps)")
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(ROOT / "k8s" / "local-images.sh")], capture_output=True, text=True, timeout=2400, check=False
    )
    (OUT / "images.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"image build failed:\n{result.stderr[-4000:]}"
    built: dict[str, str] = {}
    for line in result.stdout.splitlines():
        name, image, size, seconds = line.split("\t")
        built[name] = image
        REPORT["images"][name] = {"image": image, "size": size, "build": seconds}
    REPORT["images_total_s"] = round(time.monotonic() - started)
    assert set(built) == set(IMAGES), result.stdout
    return built


@pytest.fixture(scope="session")
def manifests(images: dict[str, str]) -> list[dict[str, Any]]:
    """The chart as installed by default, with the locally built images, a 2 s alias poll, and the PodMonitor."""
    values: dict[str, Any] = {
        "images": {name: dict(zip(("repository", "tag"), images[name].split(":"), strict=True)) for name in IMAGES},
        "predictor": {"extraEnv": [{"name": "CHURN_RELOAD_INTERVAL", "value": "2"}]},
        "monitoring": {"podMonitor": {"enabled": True}},
    }
    return render_chart(values, namespace=NAMESPACE)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("containers")
    path.chmod(0o755)  # bind-mounted folders below must be reachable by the pods' users
    yield path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT["images"] and not REPORT["memory"]:
        return
    write = terminalreporter.write_line
    terminalreporter.section("containers: images and memory")
    for name, row in REPORT["images"].items():
        write(f"image {name:6s} {row['size']:>8s}  {row['build']:>6s} to build or reuse  {row['image']}")
    for name, row in REPORT["memory"].items():
        write(
            f"memory {name:40s} peak {row['peak_mib']:7.1f} MiB (rss {row['rss_mib']:6.1f}) of limit {row['limit_mib']:6.0f} MiB"
        )
    for key in ("images_total_s", "stack_s"):
        if key in REPORT:
            write(f"{key}: {REPORT[key]} s")
