"""Inference log: served inputs and outputs as JSON lines, sampled and rotated, written off the request path
(stdlib QueueHandler → RotatingFileHandler). `python -m training drift --current <dir>` reads it."""

from __future__ import annotations

import logging
import os
import queue
import random
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener, RotatingFileHandler
from pathlib import Path
from typing import Any

from contract import inference_log as record


class InferenceLog:
    def __init__(self, directory: Path, *, sample_ratio: float, max_bytes: int, backups: int = 5) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.sample_ratio = sample_ratio
        # One file per process: worker processes must not rotate each other's files.
        handler = RotatingFileHandler(
            directory / f"inference-{os.getpid()}.jsonl",
            maxBytes=max_bytes,
            backupCount=backups,  # record.FILE_GLOB
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        q: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=10_000)
        self._listener = QueueListener(q, handler)
        self._logger = logging.getLogger(f"churnguard.inference.{id(self)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(QueueHandler(q))
        self._listener.start()

    def write(
        self, version: str, rows: list[dict[str, Any]], proba: list[float], labels: list[int], ids: list[str]
    ) -> None:
        ts = datetime.now(UTC).isoformat(timespec="milliseconds")
        for features, p, y, i in zip(rows, proba, labels, ids, strict=True):
            if self.sample_ratio >= 1 or random.random() < self.sample_ratio:
                self._logger.info(record.line(ts, version, features, p, y, i))

    def close(self) -> None:
        self._listener.stop()
