"""`make up` as a person runs it: one "ready in" line, the UI and a prediction through nginx, and Ctrl-C (SIGINT to
make's process group, as a terminal sends it) stops every server within 5 s and frees the ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from tests.support import ROOT, free_port

pytestmark = pytest.mark.integration

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
PROMETHEUS = shutil.which("prometheus")
ROW = {"age": 30, "tenure_months": 2, "monthly_charges": 95.5, "contract_type": 0, "num_tickets": 4}
# make with SIGINT at its default action even when this test runs under a shell that ignores it (background jobs).
DEFAULT_SIGINT = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp('make', sys.argv[1:])"


class Up:
    """A running `make up`: its output lines as they come, in its own session (as a terminal's foreground job)."""

    def __init__(self, stack: Path, ports: dict[str, int]) -> None:
        args = ["make", "--no-print-directory", "-C", str(ROOT), "up", f"STACK={stack}"]
        args += [f"{k}={v}" for k, v in ports.items()]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DEFAULT_SIGINT, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, start: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if line.startswith(start)]
            if found:
                return found[0]
            if self.proc.poll() is not None:
                self._reader.join(2)
                raise AssertionError(f"make up exited {self.proc.returncode} before {start!r}:\n{self.output}")
            time.sleep(0.2)
        raise AssertionError(f"no {start!r} line within {timeout:.0f} s:\n{self.output}")

    def processes(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def interrupt(self) -> float:
        """Ctrl-C: SIGINT to make's process group; seconds until make exited."""
        start = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(30)
        self._reader.join(5)
        return time.monotonic() - start

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@contextmanager
def make_up(stack: Path, ports: dict[str, int]) -> Iterator[Up]:
    up = Up(stack, ports)
    try:
        yield up
    finally:
        leftovers = up.processes() if up.proc.poll() is None else []
        up.kill()
        for p in leftovers:  # only after a failed assertion: never leave servers behind for the next test
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)


def port_free(port: int) -> bool:
    """Bindable as a server binds it (SO_REUSEADDR: connections in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def gone(processes: list[psutil.Process]) -> list[str]:
    """The processes of `processes` still running (zombies count as gone: they hold no port and no memory)."""
    left = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(" ".join(p.cmdline())[:100])
        except psutil.NoSuchProcess:
            pass
    return left


@dataclass(frozen=True)
class Stack:
    dir: Path
    ports: dict[str, int]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    if not NGINX or not PROMETHEUS:
        missing = [name for name, path in (("nginx", NGINX), ("prometheus", PROMETHEUS)) if not path]
        pytest.skip(f"make up runs Debian's {' and '.join(missing)}: not installed (make system-deps as root)")
    ports = {name: free_port() for name in ("MLFLOW_PORT", "PREDICTOR_PORT", "UI_PORT", "PROMETHEUS_PORT")}
    return Stack(tmp_path_factory.mktemp("make-up") / "stack", ports)


def test_make_up_serves_the_ui_and_ctrl_c_stops_everything_within_5_s(stack: Stack) -> None:
    ports = stack.ports
    with make_up(stack.dir, ports) as up:
        up.wait_line("ready in", timeout=240)
        ui = f"http://127.0.0.1:{ports['UI_PORT']}"
        page = requests.get(f"{ui}/", timeout=10)
        assert page.status_code == 200 and "<title>ChurnGuard" in page.text
        r = requests.post(f"{ui}/v1/models/churnguard:predict", json={"instances": [ROW]}, timeout=10)
        assert r.status_code == 200, r.text
        assert 0 < r.json()["predictions"][0]["churn_probability"] < 1
        running = up.processes()
        commands = " ".join(" ".join(p.cmdline()) for p in running)
        for server in ("mlflow", "-m predictor", "nginx: master", "prometheus --config.file"):
            assert server in commands, f"{server} not among make up's processes: {commands}"

        seconds = up.interrupt()
        left = gone(running)
        busy = [name for name, port in ports.items() if not port_free(port)]
        assert seconds <= 5 and up.lines[-1] == "stopped" and not left and not busy, (
            f"after Ctrl-C: make exited in {seconds:.1f} s, left {left}, ports in use {busy}, output:\n{up.output}"
        )


def test_a_second_make_up_reuses_the_store_without_training(stack: Stack) -> None:
    if not (stack.dir / "mlflow.db").exists():
        pytest.skip("the first make up did not create a store")
    with make_up(stack.dir, stack.ports) as up:
        up.wait_line("ready in", timeout=120)
        up.interrupt()
    assert not [line for line in up.lines if line.startswith("training")] and up.lines[-1] == "stopped", up.output


def test_a_server_that_cannot_start_stops_the_others_and_names_its_log(stack: Stack) -> None:
    ports = dict(stack.ports)
    with socket.socket() as held:  # bound, not listening: passes make up's check, fails nginx's bind
        held.bind(("127.0.0.1", 0))
        ports["UI_PORT"] = held.getsockname()[1]
        with make_up(stack.dir, ports) as up:
            seen: list[psutil.Process] = []
            deadline = time.monotonic() + 120
            while up.proc.poll() is None and time.monotonic() < deadline:
                seen = [*seen, *(p for p in up.processes() if p not in seen)]
                time.sleep(0.2)
            assert up.proc.poll() is not None, f"make up still running with the UI port taken:\n{up.output}"
            up._reader.join(5)
    log = stack.dir / "logs" / "nginx.log"
    assert up.proc.returncode != 0 and f"nginx stopped during start-up: see {log}" in up.output, up.output
    assert not gone(seen), gone(seen)
    assert [name for name, port in stack.ports.items() if name != "UI_PORT" and not port_free(port)] == []
