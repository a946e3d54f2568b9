"""The dataset spec: what it accepts, what it refuses, and that it survives the round trips it makes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contract.spec import DatasetSpec

BASE = """
name: demo
target: {name: churned, positive: "Yes", negative: "No"}
id_columns: [customer_id]
features:
  - {name: tenure, type: integer, min: 0, max: 72}
  - {name: charges, type: float, min: 0, nullable: true}
  - {name: plan, type: category, values: [basic, plus], labels: {basic: Basic, plus: Plus}}
"""


def test_committed_spec_loads(spec: DatasetSpec) -> None:
    assert spec.name == "churnguard"
    assert spec.feature_names == ["age", "tenure_months", "monthly_charges", "contract_type", "num_tickets"]
    assert spec.target.values == (0, 1)
    assert spec.feature("contract_type").label(0) == "Month-to-month"


def test_string_target_and_ids() -> None:
    s = DatasetSpec.from_yaml(BASE)
    assert s.target.values == ("No", "Yes")
    assert s.columns == ["customer_id", "tenure", "charges", "plan", "churned"]
    assert [f.name for f in s.categorical] == ["plan"]


def test_yaml_and_json_round_trips_keep_int_label_keys(spec: DatasetSpec) -> None:
    again = DatasetSpec.from_yaml(spec.to_yaml())
    assert again == spec
    assert DatasetSpec.model_validate(spec.public()) == spec


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("- {name: plan, type: category}", "needs 'values'"),
        ("- {name: plan, type: category, values: [a, a]}", "duplicates"),
        ("- {name: plan, type: category, values: [1, a]}", "mixes numbers and strings"),
        ("- {name: plan, type: category, values: [a], labels: {b: B}}", "unknown values"),
        ("- {name: plan, type: integer, min: 5, max: 1}", "min 5.0 > max 1.0"),
        ("- {name: plan, type: float, values: [1]}", "categories only"),
        ("- {name: plan, type: text}", "type"),
        ("- {name: plan, type: float, colour: red}", "colour"),
        ("- {name: tenure, type: float}", "used twice"),
        ("- {name: plan, type: category, values: [a, b], monotonic: increasing}", "numeric features only"),
        ("- {name: plan, type: float, monotonic: upwards}", "monotonic"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(change: str, message: str) -> None:
    text = BASE.replace(
        "- {name: plan, type: category, values: [basic, plus], labels: {basic: Basic, plus: Plus}}", change
    )
    with pytest.raises(ValidationError, match=message):
        DatasetSpec.from_yaml(text)


def test_string_positive_needs_a_negative() -> None:
    with pytest.raises(ValidationError, match="explicit 'negative'"):
        DatasetSpec.from_yaml(BASE.replace(', negative: "No"', ""))


def test_monotonic_is_optional_and_survives_the_round_trips() -> None:
    s = DatasetSpec.from_yaml(
        BASE.replace("{name: tenure, type: integer,", "{name: tenure, type: integer, monotonic: decreasing,")
    )
    assert [f.monotonic for f in s.features] == ["decreasing", None, None]
    assert DatasetSpec.from_yaml(s.to_yaml()) == s
    assert DatasetSpec.model_validate(s.public()) == s
    assert "monotonic" not in DatasetSpec.from_yaml(BASE).to_yaml()  # unset stays out of written specs
