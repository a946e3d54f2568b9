"""Predictor metrics that are computed in bulk: they must equal what per-row updates would have produced."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from contract import reference
from contract.spec import DatasetSpec
from predictor.decode import Decoder
from predictor.metrics import DriftMonitor, bin_labels, observe_many
from training.data import generate


def samples(reg: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in reg.collect() for s in m.samples}


def test_observe_many_equals_observing_each_value() -> None:
    buckets = tuple(round(0.05 * i, 2) for i in range(1, 21))
    values = np.concatenate([np.random.default_rng(0).random(997), [0.0, 0.05, 0.1, 1.0, 0.35, 0.3500001]])
    regs = CollectorRegistry(), CollectorRegistry()
    one, many = (Histogram("p", "p", buckets=buckets, registry=r) for r in regs)
    for v in values.tolist():
        one.observe(v)
    observe_many(many, values[:5])  # short arrays take the per-value path
    observe_many(many, values[5:])
    a, b = ({k: v for k, v in samples(r).items() if k[0] != "p_created"} for r in regs)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a if k[0] != "p_sum")
    assert np.isclose(a[("p_sum", ())], b[("p_sum", ())])
    assert a[("p_bucket", (("le", "0.05"),))] >= 2  # 0.0 and the boundary value 0.05 itself (le is inclusive)


def test_drift_monitor_same_result_whatever_the_request_sizes(spec: DatasetSpec) -> None:
    df = generate(700, seed=4)
    stats = reference.stats(generate(2000, seed=5), spec)
    x = Decoder(spec, 10_000).v1({"instances": df[spec.feature_names].to_dict("records")})
    single, batched = DriftMonitor(spec, stats, window=500), DriftMonitor(spec, stats, window=500)
    for i in range(len(x)):
        single.observe(x[i : i + 1])
    batched.observe(x[:300])
    batched.observe(x[300:])
    regs = CollectorRegistry(), CollectorRegistry()
    regs[0].register(single)
    regs[1].register(batched)
    a, b = samples(regs[0]), samples(regs[1])
    assert a.keys() == b.keys() and all(np.isclose(a[k], b[k]) for k in a)
    # the window is the last 500 rows, and its PSI is the one the drift CLI computes on the same rows
    assert a[("churnguard_drift_window_rows", ())] == 500
    expected = reference.psi_frame(df.iloc[-500:], stats, spec)
    for name, psi in expected.items():
        assert np.isclose(a[("churnguard_feature_psi", (("feature", name),))], psi), name
    total = a[("churnguard_feature_value_count", (("feature", "age"),))]
    assert total == 700  # every row counted in the cumulative histogram


def test_bin_labels_sort_in_bin_order(spec: DatasetSpec) -> None:
    stats = reference.stats(generate(2000, seed=5), spec)
    for f in spec.features:
        labels = bin_labels(f, stats[f.name])
        assert sorted(labels) == labels and len(labels) == len(stats[f.name]["proportions"]), labels
    charges = bin_labels(spec.feature("monthly_charges"), stats["monthly_charges"])
    assert charges[0].startswith("00 <= ") and charges[-1].startswith(f"{len(charges) - 1:02d} > ")


def test_observe_many_takes_what_observe_takes() -> None:
    hist = Histogram("q", "q", buckets=(0.5, 1.0), registry=CollectorRegistry())
    observe_many(hist, np.array([0.1] * 9 + [np.nan, np.inf]))  # no error: the per-value path, as observe() would
    assert hist._buckets[0].get() == 9
