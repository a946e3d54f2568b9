"""One contract: the JSON Schema the UI validates with, the predictor's decoder and training's validation accept
exactly the same values, with the same rule messages, because all three derive from contract.columns."""

from __future__ import annotations

import io
import itertools
import math
from typing import Any

import jsonschema
import pandas as pd
import pytest

from contract import columns
from contract.spec import DatasetSpec
from predictor.decode import Decoder, RequestError
from tests.datasets import TELCO_SPEC
from training.validate import read_raw, validate_frame

SPECS = {"committed": None, "telco": TELCO_SPEC}


@pytest.fixture(params=list(SPECS))
def any_spec(request: pytest.FixtureRequest, spec: DatasetSpec) -> DatasetSpec:
    text = SPECS[request.param]
    return spec if text is None else DatasetSpec.from_yaml(text)


def good_row(spec: DatasetSpec) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for f in spec.features:
        if f.values is not None:
            row[f.name] = f.values[0]
        else:
            lo = f.min if f.min is not None else 0.0
            hi = f.max if f.max is not None else lo + 10
            row[f.name] = int((lo + hi) // 2) if f.type == "integer" else round((lo + hi) / 2, 2)
    return row


def candidates(spec: DatasetSpec) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for f in spec.features:
        if f.values is not None:
            out += [(f.name, v) for v in (*f.values, "nope", 99)]
        else:
            lo, hi = f.min or 0.0, f.max or 100.0
            edges: tuple[float, ...] = (lo, hi, lo - 1, hi + 1, lo - 0.01, hi + 0.01)
            if f.type == "integer":  # written as integers: "18.0" in a CSV is a fault of writing, not of value
                edges = tuple(int(v) for v in edges[:4])
            out += [(f.name, v) for v in (*edges, (lo + hi) / 2 + 0.5)]
        out.append((f.name, None))
    return out


def csv_accepts(spec: DatasetSpec, row: dict[str, Any]) -> bool:
    full = {**{c: f"x{i}" for i, c in enumerate(spec.id_columns)}, **row, spec.target.name: spec.target.positive}
    other = {**full, spec.target.name: spec.target.negative, **{c: "y" for c in spec.id_columns}}
    text = pd.DataFrame([full, other], columns=spec.columns).to_csv(index=False)
    return validate_frame(read_raw(io.StringIO(text)), spec).ok


def test_schema_decoder_and_validation_agree_on_every_value(any_spec: DatasetSpec) -> None:
    schema = columns.json_schema(any_spec)
    decoder = Decoder(any_spec, max_rows=10)
    base = good_row(any_spec)
    assert jsonschema.Draft202012Validator(schema).is_valid(base)
    disagreements = []
    for name, value in candidates(any_spec):
        row = {**base, name: value}
        by_schema = jsonschema.Draft202012Validator(schema).is_valid(row)
        try:
            decoder.v1({"instances": [row]})
            by_decoder = True
        except RequestError:
            by_decoder = False
        by_csv = csv_accepts(any_spec, row)
        if not by_schema == by_decoder == by_csv:
            disagreements.append((name, value, by_schema, by_decoder, by_csv))
    assert disagreements == []


def test_the_decoder_and_validation_name_a_broken_rule_alike(spec: DatasetSpec) -> None:
    decoder = Decoder(spec, max_rows=10)
    base = good_row(spec)
    for name, value in (("age", 101), ("age", 17), ("contract_type", 7), ("num_tickets", 51)):
        with pytest.raises(RequestError) as info:
            decoder.v1({"instances": [{**base, name: value}]})
        (served,) = info.value.details
        rows = [{**base, name: value, "churn": 1}, {**base, "churn": 1}, {**base, "churn": 0}]
        text = pd.DataFrame(rows).to_csv(index=False)
        validated = validate_frame(read_raw(io.StringIO(text)), spec)
        assert [(f.column, f.rule) for f in validated.failures] == [(name, served["rule"])]
        assert served["rule"] in {r.message for r in columns.rules(spec.feature(name))}


def test_mappings_per_feature_kind() -> None:
    spec = DatasetSpec.from_yaml(TELCO_SPEC)
    kinds = {
        name: (columns.pandas_dtype(f), columns.mlflow_type(f), columns.v2_datatype(f))
        for name, f in ((f.name, f) for f in spec.features)
    }
    assert kinds["tenure"] == ("int64", "long", "INT64")
    assert kinds["TotalCharges"] == ("float64", "double", "FP64")
    assert kinds["SeniorCitizen"] == ("int64", "long", "INT64")
    assert kinds["PaymentMethod"] == ("str", "string", "BYTES")
    nullable_int = DatasetSpec.from_yaml(
        "name: x\ntarget: {name: y, positive: 1}\nfeatures: [{name: n, type: integer, nullable: true}]"
    ).features[0]
    assert (columns.pandas_dtype(nullable_int), columns.mlflow_type(nullable_int)) == ("Int64", "double")


def test_rules_reject_what_they_say_and_pass_missing_values(spec: DatasetSpec) -> None:
    age = {r.message: r for r in columns.rules(spec.feature("age"))}
    assert list(age) == ["must be finite", "must be an integer", "must be >= 18", "must be <= 100"]
    for (message, rule), v in itertools.product(age.items(), (18.0, 100.0, 40.0)):
        assert rule.ok(v), (message, v)
    assert not age["must be an integer"].ok(40.5) and not age["must be finite"].ok(math.inf)
    assert age["must be <= 100"].ok_all([50.0, math.nan, 101.0]).tolist() == [True, True, False]
