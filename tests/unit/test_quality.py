"""Live quality's arithmetic (contract.quality), the prediction ids and the feedback body's rules (predictor.quality),
and the weighted-histogram increments the quality counters rely on."""

from __future__ import annotations

import base64
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram
from pydantic import ValidationError
from sklearn.metrics import f1_score, roc_auc_score

from contract import quality
from predictor import metrics
from predictor.decode import RequestError
from predictor.quality import ID_CHARS, Ids, QualityMonitor, parse_feedback
from predictor.settings import PredictorSettings

KEY = b"k" * 32


def _ids(**kw: float) -> Ids:
    return Ids(KEY, "churnguard", max_age_days=kw.get("days", 365), remember=int(kw.get("remember", 1000)))


def test_binned_auc_is_sklearns_auc_of_the_bins_and_f1_matches() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(5000)
    y = (rng.random(5000) < p).astype(np.int64)
    t = quality.Tally()
    t.add_realized(p, y, threshold=0.4)
    s = t.summary()
    assert s["roc_auc"] == pytest.approx(roc_auc_score(y, quality.bin_of(p)), abs=1e-12)
    assert abs(s["roc_auc"] - roc_auc_score(y, p)) < 0.005  # fifty bins lose little
    assert s["f1"] == pytest.approx(f1_score(y, p >= 0.4), abs=1e-12)
    assert s["rows"] == 5000 and sum(s["confusion"].values()) == 5000
    assert s["brier"] == pytest.approx(float(((p - y) ** 2).mean()))


def test_tallies_add_up_like_their_rows() -> None:
    rng = np.random.default_rng(1)
    p, y = rng.random(900), rng.integers(0, 2, 900)
    whole, a, b = quality.Tally(), quality.Tally(), quality.Tally()
    whole.add_realized(p, y, 0.5)
    a.add_realized(p[:300], y[:300], 0.5)
    b.add_realized(p[300:], y[300:], 0.5)
    a.merge(b)
    merged, want = a.summary(), whole.summary()
    assert merged.pop("confusion") == want.pop("confusion")
    assert merged == pytest.approx(want)
    assert a.ece() == pytest.approx(whole.ece())


def test_ece_uses_ten_equal_bins() -> None:
    p = np.array([0.05, 0.05, 0.95, 0.95])
    y = np.array([0, 0, 1, 0])
    # bin [0, 0.1]: sum p 0.1, positives 0; bin (0.9, 1]: sum p 1.9, positives 1 -> (0.1 + 0.9) / 4
    assert quality.ece(y, p) == pytest.approx(0.25)


def test_estimate_of_a_calibrated_model_is_its_realized_quality() -> None:
    """Confidence-based estimation: when labels really are Bernoulli(p), the expected confusion counts are the
    realized ones up to sampling noise (200,000 rows: well within 0.01)."""
    rng = np.random.default_rng(2)
    p = rng.beta(0.7, 2.0, 200_000)
    y = (rng.random(len(p)) < p).astype(np.int64)
    realized, estimated = quality.Tally(), quality.Tally()
    realized.add_realized(p, y, 0.35)
    estimated.add_estimated(p, 0.35)
    r, e = realized.summary(), estimated.summary()
    for key in ("f1", "precision", "recall", "roc_auc", "brier", "positive_rate"):
        assert abs(r[key] - e[key]) < 0.01, key


def test_weighted_increments_match_observations() -> None:
    """metrics.quality adds to a labelled Histogram's bucket values directly (prometheus_client's `_buckets` and
    `_sum`): if those move, the exposed buckets differ from plain observe() calls and this fails."""
    reg = CollectorRegistry()
    plain = Histogram("plain", "h", ["model_version", "source", "actual"], buckets=tuple(quality.EDGES), registry=reg)
    p = np.array([0.01, 0.02, 0.021, 0.5, 0.999, 1.0])
    y = np.ones(len(p), dtype=np.int64)
    for v in p:
        plain.labels("t1", "realized", "1").observe(v)
    t = quality.Tally()
    t.add_realized(p, y, 0.5)
    metrics.quality("t1", "realized", t)

    def samples(family_name: str, registry: object) -> list[tuple[str, float]]:
        fam = next(f for f in registry.collect() if f.name == family_name)  # type: ignore[attr-defined]
        return [
            (s.name.rsplit("_", 1)[-1] + s.labels.get("le", ""), s.value)
            for s in fam.samples
            if s.labels.get("model_version") == "t1" and s.labels.get("actual") == "1" and "created" not in s.name
        ]

    ours = samples("churnguard_quality_score", REGISTRY)
    want = samples("plain", reg)
    assert dict(ours) == pytest.approx(dict(want))
    # The per-bin counters' `le` is the histogram's, so PromQL can join them on it (the ROC AUC alert).
    hist_le = [k.removeprefix("bucket") for k, _ in ours if k.startswith("bucket") and not k.endswith("+Inf")]
    bin_le = {
        s.labels["le"]
        for f in REGISTRY.collect()
        if f.name == "churnguard_quality_score_bin"
        for s in f.samples
        if s.labels.get("model_version") == "t1"
    }
    assert hist_le == quality.LE and "0.1" in hist_le and "1.0" in hist_le
    assert bin_le <= set(quality.LE) and "1.0" in bin_le


def test_ids_round_trip_and_carry_the_prediction() -> None:
    ids = _ids()
    proba = np.array([0.1, 0.7321, 0.5])
    issued = ids.issue("12", 0.41, proba)
    assert len(issued) == 3 and len(set(issued)) == 3 and all(len(i) == ID_CHARS for i in issued)
    now = time.time_ns() // 1_000_000
    for token, p in zip(issued, proba, strict=True):
        checked = ids.check(token, now)
        assert not isinstance(checked, str)
        outcome, _ = checked
        assert (outcome.version, outcome.threshold, outcome.probability) == ("12", 0.41, p)
    # another replica with the same key verifies it; another key or model name does not
    assert not isinstance(_ids().check(issued[0], now), str)
    other = Ids(b"x" * 32, "churnguard", max_age_days=365, remember=1000)
    assert "signature does not match" in str(other.check(issued[0], now))
    other_model = Ids(KEY, "other-model", max_age_days=365, remember=1000)
    assert "signature does not match" in str(other_model.check(issued[0], now))


def test_id_layout_is_the_same_for_one_row_and_batches() -> None:
    """Replicas of two releases read each other's ids: format, ms (48 bits), nonce, row, version, threshold,
    probability, tag, in that order, whether the response held one row (one pack) or several."""
    ids = _ids()
    before = time.time_ns() // 1_000_000
    one = base64.urlsafe_b64decode(ids.issue("12", 0.41, np.array([0.25]))[0])
    batch = [base64.urlsafe_b64decode(t) for t in ids.issue("12", 0.41, np.array([0.5, 0.75]))]
    after = time.time_ns() // 1_000_000
    for raw, row, p in ((one, 0, 0.25), (batch[0], 0, 0.5), (batch[1], 1, 0.75)):
        assert raw[0] == 1 and before <= int.from_bytes(raw[1:7], "big") <= after
        assert struct.unpack(">HIdd", raw[11:33]) == (row, 12, 0.41, p) and len(raw) == 45
        assert raw[33:] == ids._tag(raw[:33])
    assert one[7:11] != batch[0][7:11] and batch[0][:11] == batch[1][:11]  # a nonce per response, shared by its rows


def test_altered_unknown_and_expired_ids_are_refused() -> None:
    ids = _ids(days=1)
    token = ids.issue("3", 0.5, np.array([0.2]))[0]
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[-20] ^= 1  # the probability's last byte: a higher score, same tag
    altered = base64.urlsafe_b64encode(bytes(raw)).decode()
    now = time.time_ns() // 1_000_000
    assert "forged or altered" in str(ids.check(altered, now))
    assert "characters" in str(ids.check("not-an-id", now))
    assert "characters" in str(ids.check(12, now))
    assert "older than 1 days" in str(ids.check(token, now + 2 * 86_400_000))
    assert "future" in str(ids.check(token, now - 3_600_000))


def _body(*pairs: tuple[str, object]) -> dict[str, object]:
    return {"outcomes": [{"prediction_id": i, "label": y} for i, y in pairs]}


def test_feedback_is_all_or_nothing_and_replays_are_409() -> None:
    ids = _ids()
    a, b = ids.issue("3", 0.5, np.array([0.9, 0.2]))
    outcomes, tags = parse_feedback(ids, _body((a, 1), (b, 0)), max_outcomes=10)
    assert [(o.probability, o.label) for o in outcomes] == [(0.9, 1), (0.2, 0)]
    assert ids.remember_all(tags)
    with pytest.raises(RequestError) as replay:
        parse_feedback(ids, _body((a, 1)), max_outcomes=10)
    assert replay.value.status == 409 and replay.value.details[0]["field"] == "outcomes.0.prediction_id"
    c = ids.issue("3", 0.5, np.array([0.4]))[0]
    with pytest.raises(RequestError) as mixed:  # one good, one replayed, one bad label: nothing counted
        parse_feedback(ids, _body((c, 1), (a, 1), (c, 2)), max_outcomes=10)
    assert mixed.value.status == 422
    fields = {d["field"]: d["rule"] for d in mixed.value.details}
    assert "already counted" in fields["outcomes.1.prediction_id"] and "0 (stayed)" in fields["outcomes.2.label"]
    with pytest.raises(RequestError) as twice:
        parse_feedback(ids, _body((c, 1), (c, 1)), max_outcomes=10)
    assert twice.value.status == 409
    for bad, field in (({"outcome": []}, "outcomes"), ({"outcomes": []}, "outcomes"), ([], "outcomes")):
        with pytest.raises(RequestError) as err:
            parse_feedback(ids, bad, max_outcomes=10)
        assert err.value.status == 400 and err.value.details[0]["field"] == field
    with pytest.raises(RequestError) as label:
        parse_feedback(ids, _body((c, True)), max_outcomes=10)
    assert label.value.details[0]["field"] == "outcomes.0.label"


def test_remembered_ids_are_bounded() -> None:
    ids = _ids(remember=1000)
    tokens = ids.issue("1", 0.5, np.full(1500, 0.3))
    for token in tokens:
        _, tags = parse_feedback(ids, _body((token, 0)), max_outcomes=10)
        assert ids.remember_all(tags)
    assert len(ids._seen) == 1000


def test_monitor_queues_served_rows_until_read() -> None:
    monitor = QualityMonitor(flush_rows=100)
    monitor.served("7", 0.5, np.array([0.9]))
    assert monitor.tallies == {}
    tallies = monitor.read()
    assert tallies[("7", "estimated")].rows == 1
    assert tallies[("7", "estimated")].confusion.tolist() == pytest.approx([0.9, 0.1, 0.0, 0.0])


def test_monitor_loses_no_row_to_threads_flushing_meanwhile() -> None:
    """served() takes no lock (the request path); rows queued by several threads while others flush all count."""
    monitor = QualityMonitor(flush_rows=50)
    threads = [
        threading.Thread(target=lambda: [monitor.served("7", 0.5, np.array([0.25])) for _ in range(5000)])
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert monitor.read()[("7", "estimated")].rows == 20_000


def test_the_signing_key_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("a-key-of-enough-length\n")
    settings = PredictorSettings(feedback_key_file=key)
    assert settings.feedback_key is not None and settings.feedback_key.get_secret_value() == "a-key-of-enough-length"
    key.write_text("short")
    with pytest.raises(ValidationError, match="at least 16 characters"):
        PredictorSettings(feedback_key_file=key)
    with pytest.raises(ValidationError, match="not both"):
        PredictorSettings(feedback_key="x" * 20, feedback_key_file=key)
    with pytest.raises(ValidationError, match="at least 16"):
        PredictorSettings(feedback_key="short")
