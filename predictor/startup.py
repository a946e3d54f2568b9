"""What every serving process runs before its heavy imports: the parent (`python -m predictor`) imports this
module first, and KServe's spawned workers enter through `worker()`, so they import it first too.

pandas imports pyarrow eagerly when it is installed (the training side needs it). Nothing on the serving path uses
it, and it costs ~30 MB of RSS and ~0.25 s of start-up per process (bench/README.md), so it is blocked here."""

from __future__ import annotations

import sys
from typing import Any

sys.modules.setdefault("pyarrow", None)  # type: ignore[arg-type]


def worker(process: Any, sockets: list[Any]) -> Any:
    """A worker process's entry point. Unpickling a spawned process imports its target's module before its
    arguments (which import KServe, hence pandas), so this module's block above applies in workers too."""
    return process.target(sockets)
