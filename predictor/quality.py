"""Live quality of the served model: signed prediction ids, the feedback that brings outcomes back, and the
realized and estimated counts (contract.quality) behind the quality route and the churnguard_quality_* series.

A prediction id describes its prediction and proves it (docs/quality.md): model version, threshold, probability,
time, a nonce per response and the row, and a keyed BLAKE2b tag over them and the model name. Any replica holding the
key (a Secret in the chart) can verify an id and count its outcome, however long after and wherever it was issued,
with no shared store. Each process remembers the tags it has counted (bounded), so an id sent to it again counts
nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import logging
import secrets
import struct
import threading
import time
from binascii import b2a_base64
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from contract import quality
from predictor import metrics
from predictor.decode import RequestError

log = logging.getLogger(__name__)

FORMAT = 1
HEAD = struct.Struct(">BHII")
"""Per response: format, issue time (ms since the epoch, 48 bits: its high 16 and low 32), nonce."""
ROW = struct.Struct(">HIdd")
"""Per row: row index, model version, threshold, probability."""
RECORD = struct.Struct(HEAD.format + ROW.format[1:])
"""HEAD and one ROW in one pack (a one-row response)."""
SIGNED = HEAD.size + ROW.size
TAG = 12
ID_CHARS = (SIGNED + TAG) * 4 // 3
"""45-byte records are 60 base64url characters, no padding."""
RECORDS = np.dtype(
    [
        *(("form", "u1"), ("high", ">u2"), ("low", ">u4"), ("nonce", ">u4")),  # HEAD
        *(("row", ">u2"), ("version", ">u4"), ("threshold", ">f8"), ("probability", ">f8")),  # ROW
        ("tag", f"V{TAG}"),
    ]
)
"""A batch's records as one array: HEAD, ROW and the tag, packed (no padding), big-endian as the structs."""
_SIGNED_TAG = np.dtype([("signed", f"V{SIGNED}"), ("tag", f"V{TAG}")])
"""The same records as the signed bytes and the tag (what each tag is computed over)."""
URLSAFE = bytes.maketrans(b"+/", b"-_")
"""base64 to base64url, as base64.urlsafe_b64encode translates it (called directly: two Python calls fewer)."""
SKEW_MS = 5 * 60 * 1000
"""Clock difference tolerated between replicas (an id from up to 5 minutes in the future is accepted)."""


@dataclass(frozen=True)
class Outcome:
    version: str
    threshold: float
    probability: float
    label: int


class Ids:
    """Issues and checks prediction ids for one model name under one key."""

    def __init__(self, key: bytes, model_name: str, *, max_age_days: float, remember: int) -> None:
        self._mac = hashlib.blake2b(key=key, digest_size=TAG, person=b"churnguard-id", salt=model_name.encode()[:16])
        self.max_age_ms = int(max_age_days * 86_400_000)
        self.remember = remember
        self._nonce = itertools.count(secrets.randbits(32))
        """Unique per response in this process, from a random start (the key, not the nonce, makes ids
        unguessable; the nonce keeps two responses' ids apart)."""
        self._seen: dict[bytes, None] = {}  # insertion-ordered: the oldest is forgotten first
        self._lock = threading.Lock()

    def _tag(self, signed: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(signed)
        return mac.digest()

    def issue(self, version: str, threshold: float, proba: np.ndarray) -> list[str]:
        """One id per row of one response: the records packed at once (RECORDS), one BLAKE2b copy each for the
        tags, one base64 pass for all (~0.45 us a row; 1.2 us for one row)."""
        ms, nonce, v = time.time_ns() // 1_000_000, next(self._nonce) & 0xFFFFFFFF, int(version)
        high, low = ms >> 32, ms & 0xFFFFFFFF
        if len(proba) == 1:  # the common case, in one pack
            signed = RECORD.pack(FORMAT, high, low, nonce, 0, v, threshold, float(proba[0]))
            return [b2a_base64(signed + self._tag(signed), newline=False).translate(URLSAFE).decode("ascii")]
        n = len(proba)
        records = np.empty(n, RECORDS)
        records["form"], records["high"], records["low"], records["nonce"] = FORMAT, high, low, nonce
        records["row"], records["version"], records["threshold"] = np.arange(n), v, threshold
        records["probability"] = proba
        mac, tags = self._mac.copy, []
        for signed in records.view(_SIGNED_TAG)["signed"].tolist():  # bytes of each record's signed part
            tag = mac()
            tag.update(signed)
            tags.append(tag.digest())
        records["tag"] = np.frombuffer(b"".join(tags), f"V{TAG}")
        text = b2a_base64(records.tobytes(), newline=False).translate(URLSAFE).decode("ascii")
        return [text[i : i + ID_CHARS] for i in range(0, len(text), ID_CHARS)]

    def check(self, token: Any, now_ms: int) -> tuple[Outcome, bytes] | str:
        """The prediction an id describes (label -1: the caller sets it) and its tag, or the rule it breaks."""
        if not isinstance(token, str) or len(token) != ID_CHARS:
            return f"must be a prediction_id from this model's answers ({ID_CHARS} characters)"
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return "must be a prediction_id from this model's answers (base64url)"
        form, high, low, _ = HEAD.unpack_from(raw)
        if form != FORMAT:
            return f"unknown prediction_id format {form}"
        tag = raw[SIGNED:]
        if not hmac.compare_digest(self._tag(raw[:SIGNED]), tag):
            return "signature does not match: not issued for this model under its key (forged or altered)"
        issued = high << 32 | low
        if issued > now_ms + SKEW_MS:
            return "issued in the future (check the replicas' clocks)"
        if now_ms - issued > self.max_age_ms:
            return f"older than {self.max_age_ms / 86_400_000:g} days (CHURN_FEEDBACK_MAX_AGE_DAYS): not counted"
        _, version, threshold, probability = ROW.unpack_from(raw, HEAD.size)
        return Outcome(str(version), threshold, probability, -1), tag

    def seen(self, tag: bytes) -> bool:
        return tag in self._seen

    def remember_all(self, tags: list[bytes]) -> bool:
        """Record the tags as counted, unless one was counted meanwhile (then nothing is recorded)."""
        with self._lock:
            if any(t in self._seen for t in tags):
                return False
            for t in tags:
                self._seen[t] = None
            while len(self._seen) > self.remember:
                del self._seen[next(iter(self._seen))]
            return True


def tag_of(prediction_id: str) -> bytes:
    """The tag of an id this process issued (the key under which its shadow score is remembered)."""
    return base64.urlsafe_b64decode(prediction_id)[SIGNED:]


def parse_feedback(ids: Ids, body: Any, max_outcomes: int) -> tuple[list[Outcome], list[bytes]]:
    """The outcomes of a feedback body, every one checked; any failure rejects the whole body (nothing counted),
    with one detail per failing outcome. Replays (an id counted before, or twice in the body) answer 409."""
    if not isinstance(body, dict) or not isinstance(body.get("outcomes"), list):
        raise _malformed('body must be a JSON object with an "outcomes" list', "outcomes")
    unknown = sorted(set(body) - {"outcomes"})
    if unknown:
        raise _malformed(f"unknown top-level fields {unknown}", None)
    items = body["outcomes"]
    if not 1 <= len(items) <= max_outcomes:
        raise _malformed(f"outcomes must hold 1 to {max_outcomes} items, not {len(items)}", "outcomes")
    now = time.time_ns() // 1_000_000
    outcomes, tags, details, replays = [], [], [], 0
    in_body: set[bytes] = set()
    for i, item in enumerate(items):
        field = f"outcomes.{i}"
        if not isinstance(item, dict) or set(item) != {"prediction_id", "label"}:
            details.append(_detail(i, field, item, 'must be an object with exactly "prediction_id" and "label"'))
            continue
        label = item["label"]
        if isinstance(label, bool) or label not in (0, 1):
            details.append(_detail(i, f"{field}.label", label, "must be 0 (stayed) or 1 (churned)"))
        checked = ids.check(item["prediction_id"], now)
        if isinstance(checked, str):
            details.append(_detail(i, f"{field}.prediction_id", item["prediction_id"], checked))
            continue
        outcome, tag = checked
        if tag in in_body or ids.seen(tag):
            replays += 1
            details.append(_detail(i, f"{field}.prediction_id", item["prediction_id"], "already counted (a replay)"))
            continue
        in_body.add(tag)
        if not details:
            outcomes.append(Outcome(outcome.version, outcome.threshold, outcome.probability, int(label)))
            tags.append(tag)
    if details:
        replay_only = replays == len(details)
        for reason, n in (("replayed", replays), ("rejected", len(details) - replays)):
            if n:
                metrics.FEEDBACK.labels(reason).inc(n)
        message = "every outcome was counted before" if replay_only else "outcomes rejected: nothing was counted"
        raise RequestError(message, details, status=409 if replay_only else 422, reason="feedback")
    return outcomes, tags


def _detail(row: int, field: str, value: Any, rule: str) -> dict[str, Any]:
    shown = value if isinstance(value, int | float | bool) or value is None else str(value)[:80]
    return {"row": row, "field": field, "value": shown, "rule": rule}


def _malformed(message: str, field: str | None) -> RequestError:
    return RequestError(message, [{"row": None, "field": field, "value": None, "rule": message}], 400, "malformed")


class QualityMonitor:
    """Per model version, the realized and estimated tallies of this process, mirrored into the Prometheus
    counters. Served rows are queued (one append on the request path) and tallied in bulk: at a scrape, at a read
    of the quality route, or once `flush_rows` are queued."""

    def __init__(self, flush_rows: int = 10_000) -> None:
        self.flush_rows = flush_rows
        self._lock = threading.Lock()
        self._pending: deque[tuple[str, float, np.ndarray]] = deque()  # appended without the lock
        self._pending_rows = 0  # when to flush: a count lost to a race only delays a flush
        self.tallies: dict[tuple[str, str], quality.Tally] = {}

    def served(self, version: str, threshold: float, proba: np.ndarray) -> None:
        self._pending.append((version, threshold, proba))
        self._pending_rows += len(proba)
        if self._pending_rows >= self.flush_rows:
            self.flush()

    def outcomes(self, outcomes: list[Outcome]) -> None:
        """Labelled rows, by the version that predicted them, at the threshold it used."""
        by: dict[tuple[str, float], list[Outcome]] = {}
        for o in outcomes:
            by.setdefault((o.version, o.threshold), []).append(o)
        with self._lock:
            for (version, threshold), group in by.items():
                p = np.array([o.probability for o in group])
                y = np.array([o.label for o in group], dtype=np.int64)
                t = quality.Tally()
                t.add_realized(p, y, threshold)
                self._count(version, "realized", t)

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def read(self) -> dict[tuple[str, str], quality.Tally]:
        with self._lock:
            self._flush()
            return {k: _copy(v) for k, v in self.tallies.items()}

    def _flush(self) -> None:
        self._pending_rows = 0
        by: dict[tuple[str, float], list[np.ndarray]] = {}
        for _ in range(len(self._pending)):  # what is queued now; later appends wait for the next flush
            version, threshold, proba = self._pending.popleft()
            by.setdefault((version, threshold), []).append(proba)
        for (version, threshold), parts in by.items():
            t = quality.Tally()
            t.add_estimated(np.concatenate(parts), threshold)
            self._count(version, "estimated", t)

    def _count(self, version: str, source: str, t: quality.Tally) -> None:
        self.tallies.setdefault((version, source), quality.Tally()).merge(t)
        metrics.quality(version, source, t)


def _copy(t: quality.Tally) -> quality.Tally:
    out = quality.Tally()
    out.merge(t)
    return out


def report(
    tallies: dict[tuple[str, str], quality.Tally],
    served_version: str,
    test: dict[str, Any],
    min_rows: int,
    ece_tolerance: float,
) -> dict[str, Any]:
    """The quality route's versions: per version, realized and estimated metrics with their rows, and whether the
    estimate can be trusted (the live calibration error on labelled rows within `ece_tolerance` of the test
    split's, over at least `min_rows` labelled rows)."""
    versions = sorted({v for v, _ in tallies} | {served_version}, key=int, reverse=True)
    out = []
    for v in versions:
        realized, estimated = tallies.get((v, "realized")), tallies.get((v, "estimated"))
        live_ece = realized.ece() if realized is not None and realized.rows >= min_rows else None
        test_ece = test.get("ece") if v == served_version else None
        holds = None if live_ece is None or test_ece is None else live_ece <= test_ece + ece_tolerance
        out.append(
            {
                "model_version": v,
                "serving": v == served_version,
                "realized": (realized or quality.Tally()).summary(),
                "estimated": (estimated or quality.Tally()).summary(),
                "calibration": {
                    "labelled_rows": realized.rows if realized is not None else 0,
                    "min_rows": min_rows,
                    "live_ece": live_ece,
                    "test_ece": test_ece,
                    "tolerance": ece_tolerance,
                    "holds": holds,
                },
            }
        )
    return {"versions": out}
