"""A challenger in shadow: when the registry alias `challenger` names another version, a sampled share of the
served rows is scored by it too, in a thread of its own, after the champion's answer has gone. The request path
only samples and appends to a bounded queue (full: the rows are dropped and counted, never waited for).

Per (champion, challenger) pair: rows scored, verdict agreement, the score difference; the challenger's estimated
quality on the same rows (contract.quality, under its own version); and, for outcomes of shadowed rows that come
back to this process, its realized quality beside the champion's. The challenger's probability of a shadowed row
is remembered by the row's id tag (bounded), so only this process can pair it with a label: the shadow's realized
quality is a sample of the labelled rows, the share that returns to the replica that shadowed them."""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from contract.spec import DatasetSpec
from predictor import champion, metrics
from predictor.quality import Outcome, QualityMonitor, tag_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    champion_version: str
    champion_threshold: float
    spec: DatasetSpec
    """The champion's spec: its rows are arrays in its feature order and category codes."""
    x: np.ndarray
    proba: np.ndarray
    ids: list[str]


class Shadow:
    def __init__(
        self, quality: QualityMonitor, *, sample_ratio: float, queue_rows: int = 20_000, remember: int = 100_000
    ) -> None:
        self.quality = quality
        self.sample_ratio = sample_ratio
        self.queue_rows = queue_rows
        self.remember = remember
        self.challenger: champion.Served | None = None
        self._jobs: deque[_Job] = deque()
        self._queued = 0
        self._wake = threading.Condition()
        self._scores: dict[bytes, tuple[str, float, float]] = {}  # id tag -> challenger version, threshold, p
        self._lock = threading.Lock()
        self.stats: dict[tuple[str, str], dict[str, float]] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="churnguard-shadow", daemon=True)
        self._thread.start()

    def set_challenger(self, served: champion.Served | None) -> None:
        previous, self.challenger = self.challenger, served
        if previous is not None and (served is None or served.version != previous.version):
            metrics.challenger(previous.name, previous.version, previous.threshold, serving=False)
        if served is not None:
            metrics.challenger(served.name, served.version, served.threshold, serving=True)

    def offer(self, served: champion.Served, x: np.ndarray, proba: np.ndarray, ids: list[str]) -> None:
        """On the request path: maybe queue the rows for the challenger (one random draw and an append)."""
        challenger = self.challenger
        if challenger is None or challenger.version == served.version or random.random() >= self.sample_ratio:
            return
        with self._wake:
            if self._queued + len(x) > self.queue_rows:
                metrics.SHADOW_ROWS.labels(served.version, challenger.version, "dropped").inc(len(x))
                return
            self._jobs.append(_Job(served.version, served.threshold, served.spec, x, proba, ids))
            self._queued += len(x)
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._jobs:
                    self._wake.wait()
                jobs, self._jobs, self._queued = list(self._jobs), deque(), 0
            challenger = self.challenger
            if challenger is None:
                continue
            try:
                self._score(challenger, jobs)
            except Exception:  # never let one bad batch stop the shadow
                log.exception("shadow scoring with challenger version %s failed", challenger.version)

    def _score(self, challenger: champion.Served, jobs: list[_Job]) -> None:
        for job in jobs:
            if job.champion_version == challenger.version:
                continue
            pair = (job.champion_version, challenger.version)
            if job.spec.features != challenger.spec.features:  # other features or codes
                metrics.SHADOW_ROWS.labels(*pair, "incompatible").inc(len(job.x))
                continue
            p = challenger.scorer.proba(job.x)
            same = (p >= challenger.threshold) == (job.proba >= job.champion_threshold)
            metrics.shadowed(*pair, p - job.proba, int(same.sum()), len(p))
            self.quality.served(challenger.version, challenger.threshold, p)
            with self._lock:
                stat = self.stats.setdefault(pair, {"rows": 0.0, "same": 0.0, "difference_sum": 0.0})
                stat["rows"] += len(p)
                stat["same"] += float(same.sum())
                stat["difference_sum"] += float((p - job.proba).sum())
                for i, pi in zip(job.ids, p.tolist(), strict=True):
                    self._scores[tag_of(i)] = (challenger.version, challenger.threshold, pi)
                while len(self._scores) > self.remember:
                    del self._scores[next(iter(self._scores))]

    def outcomes(self, outcomes: list[Outcome], tags: list[bytes]) -> int:
        """Labels of rows this process shadowed, as outcomes of the challenger's scores; returns how many."""
        paired = []
        with self._lock:
            for o, tag in zip(outcomes, tags, strict=True):
                scored = self._scores.pop(tag, None)
                if scored is not None:
                    paired.append(Outcome(scored[0], scored[1], scored[2], o.label))
        if paired:
            self.quality.outcomes(paired)
        return len(paired)

    def report(self) -> dict[str, object] | None:
        challenger = self.challenger
        if challenger is None:
            return None
        with self._lock:
            pairs = {f"{c} vs {s}": dict(v) for (c, s), v in self.stats.items() if s == challenger.version}
        return {
            "model_version": challenger.version,
            "threshold": challenger.threshold,
            "sample_ratio": self.sample_ratio,
            "against": [
                {
                    "champion_version": key.split(" vs ")[0],
                    "rows": v["rows"],
                    "agreement": v["same"] / v["rows"] if v["rows"] else None,
                    "mean_difference": v["difference_sum"] / v["rows"] if v["rows"] else None,
                }
                for key, v in pairs.items()
            ],
        }
