"""Live model quality: the one set of bins and the arithmetic behind realized quality (from labelled outcomes) and
estimated quality (from served probabilities alone), shared by training (the test split's calibration error), the
predictor (its counters and quality route) and the alert rules (which compute the same numbers in PromQL from the
same counts, docs/quality.md).

A `Tally` is additive: counts from several replicas, or several scrapes, sum to the counts of all their rows.
- Realized: each labelled row adds 1 to its cell of the confusion matrix at the version's threshold, 1 to the bin
  of its probability for its label, (p - y)^2 to the Brier sum and p to its bin's probability sum (calibration).
- Estimated (confidence-based performance estimation): a served row of probability p is, in expectation, p of a
  positive and 1 - p of a negative. It adds p to TP (or FN, below the threshold) and 1 - p to FP (or TN), p to its
  bin's positive weight and 1 - p to its negative weight, and p (1 - p) to the expected Brier sum. The estimate is
  right exactly while the model is calibrated on the traffic it serves: covariate shift keeps it right, a change in
  how churn depends on the features does not. The live calibration error on labelled rows tells which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BINS = 50
"""Equal-width probability bins; ROC AUC from binned scores differs from the exact one by ties within a bin."""
EDGES = np.round(np.linspace(0.0, 1.0, BINS + 1)[1:], 2)
"""Upper edge of each bin (Prometheus `le`); a probability p falls in the first bin with p <= edge."""
LE = [repr(e) for e in EDGES.tolist()]
"""The bins' `le` label values, spelled as prometheus-client spells a histogram's buckets ("0.1", "1.0"), so that
PromQL can match the per-bin counters with the cumulative histogram on `le`."""
CELLS = ("tp", "fp", "fn", "tn")
ECE_BINS = 10
"""The calibration error groups the bins by five (ten equal-width bins, the usual choice: finer bins on a few
hundred rows measure mostly noise)."""


def bin_of(p: np.ndarray) -> np.ndarray:
    """The bin index of each probability (right-closed bins, as Prometheus buckets)."""
    return np.minimum(np.searchsorted(EDGES, p, side="left"), BINS - 1)


def ece(y: np.ndarray, p: np.ndarray) -> float:
    """Expected calibration error over ECE_BINS equal-width bins: sum over bins |sum p - positives| / rows."""
    t = Tally()
    t.add_realized(np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.int64), threshold=0.5)
    return t.ece() or 0.0


@dataclass
class Tally:
    """The additive counts of one model version from one source (realized or estimated)."""

    rows: float = 0.0
    confusion: np.ndarray = field(default_factory=lambda: np.zeros(4))
    """tp, fp, fn, tn (expected counts for the estimated source)."""
    positive: np.ndarray = field(default_factory=lambda: np.zeros(BINS))
    """Per bin: positives (realized) or the positive weight sum p (estimated)."""
    negative: np.ndarray = field(default_factory=lambda: np.zeros(BINS))
    brier: float = 0.0
    probability: np.ndarray = field(default_factory=lambda: np.zeros(BINS))
    """Per bin: the sum of probabilities of the rows counted (realized: for the calibration error)."""
    score_sums: np.ndarray = field(default_factory=lambda: np.zeros(2))
    """Sum of probability x weight of the positives and of the negatives (a histogram's _sum)."""

    def add_realized(self, p: np.ndarray, y: np.ndarray, threshold: float) -> None:
        """Labelled rows: probability `p` as served, outcome `y`, the threshold the served version used."""
        if len(p) == 0:
            return
        called = p >= threshold
        self._add(p, y.astype(np.float64), called)
        self.brier += float(((p - y) ** 2).sum())

    def add_estimated(self, p: np.ndarray, threshold: float) -> None:
        """Served rows without labels: each counts p of a positive and 1 - p of a negative."""
        if len(p) == 0:
            return
        self._add(p, p, p >= threshold)
        self.brier += float((p * (1.0 - p)).sum())

    def _add(self, p: np.ndarray, pos: np.ndarray, called: np.ndarray) -> None:
        neg = 1.0 - pos
        b = bin_of(p)
        self.rows += len(p)
        self.confusion += (
            float(pos[called].sum()),
            float(neg[called].sum()),
            float(pos[~called].sum()),
            float(neg[~called].sum()),
        )
        self.positive += np.bincount(b, weights=pos, minlength=BINS)
        self.negative += np.bincount(b, weights=neg, minlength=BINS)
        self.probability += np.bincount(b, weights=p, minlength=BINS)
        self.score_sums += (float((pos * p).sum()), float((neg * p).sum()))

    def merge(self, other: Tally) -> None:
        self.rows += other.rows
        self.confusion += other.confusion
        self.positive += other.positive
        self.negative += other.negative
        self.brier += other.brier
        self.probability += other.probability
        self.score_sums += other.score_sums

    def roc_auc(self) -> float | None:
        """P(score of a positive > score of a negative), ties within a bin counted half (None: a class is
        missing). The same sum the alert rule computes: sum_b pos_b (cumulative neg up to b - neg_b / 2) / (P N)."""
        p_total, n_total = self.positive.sum(), self.negative.sum()
        if p_total <= 0 or n_total <= 0:
            return None
        below = np.cumsum(self.negative) - self.negative / 2
        return float((self.positive * below).sum() / (p_total * n_total))

    def ece(self) -> float | None:
        """Calibration error of labelled rows: sum over ECE_BINS bins |sum p - positives| / rows (None without
        rows)."""
        if self.rows <= 0:
            return None
        gap = (self.probability - self.positive).reshape(ECE_BINS, -1).sum(axis=1)
        return float(np.abs(gap).sum() / self.rows)

    def summary(self) -> dict[str, Any]:
        """The metrics and the rows behind them (None where undefined)."""
        tp, fp, fn, tn = self.confusion.tolist()
        rows = self.rows
        precision = tp / (tp + fp) if tp + fp > 0 else None
        recall = tp / (tp + fn) if tp + fn > 0 else None
        f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn > 0 else None
        return {
            "rows": round(rows, 6),
            "f1": f1,
            "precision": precision,
            "recall": recall,
            "accuracy": (tp + tn) / rows if rows > 0 else None,
            "roc_auc": self.roc_auc(),
            "brier": self.brier / rows if rows > 0 else None,
            "positive_rate": (tp + fn) / rows if rows > 0 else None,
            "confusion": dict(zip(CELLS, [round(v, 6) for v in (tp, fp, fn, tn)], strict=True)),
        }
