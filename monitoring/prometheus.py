"""Run a local Prometheus (Debian `prometheus`) on loopback that scrapes a predictor with ChurnGuard's rules loaded.

    python -m monitoring.prometheus --target 127.0.0.1:8080 --port 9090

Prints the URL once Prometheus is ready, then runs until interrupted (SIGINT/SIGTERM stop Prometheus too).
Exits 0 with a note when no `prometheus` binary is installed, so `make up` works without it.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEMPLATE = HERE / "prometheus.yml"
RULES = ROOT / "charts" / "churnguard" / "files" / "rules" / "churnguard.rules.yaml"


def config(target: str, rules: Path, scrape_interval: str) -> str:
    """The Prometheus configuration: one static scrape job for the predictor, the rule file loaded."""
    return string.Template(TEMPLATE.read_text()).substitute(
        target=target, rules=str(rules.resolve()), scrape_interval=scrape_interval
    )


def command(binary: str, config_file: Path, data_dir: Path, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir / 'tsdb'}",
        "--storage.tsdb.retention.time=2d",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.prometheus", description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:8080", help="predictor address host:port (default %(default)s)")
    parser.add_argument("--port", type=int, default=9090, help="Prometheus port on 127.0.0.1 (default %(default)s)")
    parser.add_argument(
        "--data-dir", type=Path, default=ROOT / ".churnguard" / "prometheus", help="config and TSDB directory"
    )
    parser.add_argument("--rules", type=Path, default=RULES, help="rule file (default: the chart's)")
    parser.add_argument("--scrape-interval", default="5s", help="scrape and rule evaluation interval (default 5s)")
    parser.add_argument("--prometheus", default=shutil.which("prometheus"), help="the prometheus binary")
    args = parser.parse_args(argv)
    if not args.prometheus:
        print("prometheus is not installed (Debian: apt-get install prometheus); local monitoring skipped")
        return 0
    args.data_dir.mkdir(parents=True, exist_ok=True)
    config_file = args.data_dir / "prometheus.yml"
    config_file.write_text(config(args.target, args.rules, args.scrape_interval))
    url = f"http://127.0.0.1:{args.port}"
    proc = subprocess.Popen(command(args.prometheus, config_file, args.data_dir, args.port))

    def stop(signum: int, _: FrameType | None) -> None:
        proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        wait_ready(url, proc, timeout=60)
    except (RuntimeError, TimeoutError) as exc:
        proc.terminate()
        print(f"local Prometheus failed to start: {exc}", file=sys.stderr)
        return 1
    print(
        f"Prometheus:  {url}  (scraping {args.target} every {args.scrape_interval}; alerts: {url}/alerts)", flush=True
    )
    try:
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    sys.exit(main())
