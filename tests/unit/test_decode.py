"""Request checks derived from the spec: every rule gives a 4xx naming the field, the value and the rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from contract.spec import DatasetSpec
from predictor.decode import Decoder, RequestError, rows

OK = {"age": 28, "tenure_months": 2, "monthly_charges": 99.5, "contract_type": 0, "num_tickets": 4}


@pytest.fixture
def decoder(spec: DatasetSpec) -> Decoder:
    return Decoder(spec, max_rows=10)


def details(decoder: Decoder, body: object) -> list[dict]:
    with pytest.raises(RequestError) as info:
        decoder.v1(body)
    assert 400 <= info.value.status < 500
    return info.value.details


def test_objects_and_arrays_decode_to_spec_order(decoder: Decoder) -> None:
    x = decoder.v1({"instances": [OK, [28, 2, 99.5, 2, 4]]})
    assert x.tolist() == [[28, 2, 99.5, 0, 4], [28, 2, 99.5, 2, 4]]


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("age", -500, "must be >= 18"),
        ("age", 101, "must be <= 100"),
        ("age", 30.5, "must be an integer"),
        ("age", "30", "must be a number"),
        ("age", True, "must be a number"),
        ("age", None, "is required"),
        ("monthly_charges", float("inf"), "must be finite"),
        ("contract_type", 3, "must be one of [0, 1, 2]"),
        ("contract_type", "0", "must be one of [0, 1, 2]"),
    ],
)
def test_each_rule(decoder: Decoder, field: str, value: object, rule: str) -> None:
    d = details(decoder, {"instances": [OK, {**OK, field: value}]})
    assert d == [
        {
            "row": 1,
            "field": field,
            "value": value if not isinstance(value, float) or math.isfinite(value) else "inf",
            "rule": rule,
        }
    ]


def test_unknown_and_missing_fields(decoder: Decoder) -> None:
    body = {"instances": [{k: v for k, v in OK.items() if k != "age"} | {"colour": "red"}]}
    assert {(d["field"], d["rule"]) for d in details(decoder, body)} == {
        ("colour", "unknown field"),
        ("age", "is required"),
    }


@pytest.mark.parametrize("body", [[], {"rows": []}, {"instances": "x"}, {"instances": [OK], "extra": 1}])
def test_malformed_bodies_are_400(decoder: Decoder, body: object) -> None:
    with pytest.raises(RequestError) as info:
        decoder.v1(body)
    assert info.value.status == 400


def test_row_cap_is_413(decoder: Decoder) -> None:
    with pytest.raises(RequestError) as info:
        decoder.v1({"instances": [OK] * 11})
    assert info.value.status == 413 and info.value.reason == "too_many_rows"


def test_rows_round_trip(decoder: Decoder, spec: DatasetSpec) -> None:
    x = decoder.v1({"instances": [OK]})
    assert rows(x, spec) == [OK]
    assert rows(np.array([[np.nan, 1, 2.5, 1, 0]]), spec)[0]["age"] is None


def test_vectorised_and_row_by_row_paths_agree(spec: DatasetSpec) -> None:
    from training.data import generate

    decoder = Decoder(spec, max_rows=1000)
    records = generate(500, seed=4)[spec.feature_names].to_dict("records")
    fast = decoder._v1_fast(records)
    assert fast is not None
    slow = np.array(
        [[decoder._value(j, f, r[f.name], i, []) for j, f in enumerate(spec.features)] for i, r in enumerate(records)]
    )
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(decoder.v1({"instances": [list(r.values()) for r in records]}), slow)


@pytest.mark.parametrize(
    "bad", [{"age": True}, {"age": 17}, {"age": 30.5}, {"contract_type": 1.0}, {"num_tickets": None}]
)
def test_one_bad_value_in_a_big_batch_is_still_named(spec: DatasetSpec, bad: dict) -> None:
    decoder = Decoder(spec, max_rows=1000)
    body = {"instances": [OK] * 300 + [{**OK, **bad}] + [OK] * 300}
    if bad == {"contract_type": 1.0}:  # a whole float is accepted for an int category, by the row-by-row path
        assert decoder.v1(body)[300, 3] == 1.0
        return
    with pytest.raises(RequestError) as info:
        decoder.v1(body)
    assert [(d["row"], d["field"]) for d in info.value.details] == [(300, next(iter(bad)))]


@pytest.mark.parametrize("bad", [["Male"], {"a": 1}, 1, None, True, "male"])
def test_a_bad_value_of_a_text_category_in_a_big_batch_is_named(bad: object) -> None:
    """The vectorised pass looks text categories up without a type check: lists and objects (unhashable), numbers,
    null and misspellings still fall back to the row-by-row path, which names the row and field."""
    from contract.spec import DatasetSpec
    from tests.datasets import TELCO_SPEC, telco_like

    spec = DatasetSpec.from_yaml(TELCO_SPEC)
    decoder = Decoder(spec, max_rows=1000)
    records = telco_like(50, seed=3)[spec.feature_names].dropna().to_dict("records")
    assert decoder._v1_fast(records) is not None
    records[20] = {**records[20], "gender": bad}
    with pytest.raises(RequestError) as info:
        decoder.v1({"instances": records})
    assert [(d["row"], d["field"]) for d in info.value.details] == [(20, "gender")]
