"""The predictor's trace sampler: a share of requests, at most so many traces per second."""

from __future__ import annotations

from predictor.tracing import Tracer


def test_rate_cap_holds_under_a_burst_and_refills_with_time() -> None:
    now = [1000.0]
    tracer = Tracer(enabled=True, sample_ratio=1.0, max_per_second=5, clock=lambda: now[0])
    assert sum(tracer.sampled() for _ in range(100)) == 5  # a burst: one second's worth
    now[0] += 0.5
    assert sum(tracer.sampled() for _ in range(100)) == 2
    now[0] += 10  # idle: the bucket holds at most one second's worth
    assert sum(tracer.sampled() for _ in range(100)) == 5


def test_a_cap_below_one_per_second_still_traces_now_and_then() -> None:
    now = [0.0]
    tracer = Tracer(enabled=True, sample_ratio=1.0, max_per_second=0.5, clock=lambda: now[0])
    seen = 0
    for _ in range(10):  # 10 s of constant traffic: one trace every 2 s
        seen += sum(tracer.sampled() for _ in range(100))
        now[0] += 1.0
    assert seen == 5


def test_ratio_applies_before_the_cap_and_off_means_never() -> None:
    tracer = Tracer(enabled=True, sample_ratio=0.1, max_per_second=1e9)
    assert 700 <= sum(tracer.sampled() for _ in range(10_000)) <= 1300  # 10%: ±10 sigma
    assert not any(Tracer(enabled=False, sample_ratio=1.0).sampled() for _ in range(100))
    assert not any(Tracer(enabled=True, sample_ratio=0.0).sampled() for _ in range(100))
