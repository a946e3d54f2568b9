"""`init-spec` drafts: the spec drafted from a CSV validates that CSV with no edit, and every guess is reported."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from tests.conftest import DATA_PATH
from tests.datasets import telco_like
from training.init_spec import SpecDraftError, draft
from training.validate import read_raw, validate_frame


def raw_of(frame: pd.DataFrame) -> pd.DataFrame:
    return read_raw(io.StringIO(frame.to_csv(index=False)))


def test_the_committed_data_drafts_a_spec_that_validates_it() -> None:
    raw = read_raw(DATA_PATH)
    d = draft(raw, target="churn", name="churnguard")
    assert validate_frame(raw, d.spec).ok
    assert d.spec.target.positive == 1 and d.spec.target.negative == 0
    assert [f.type for f in d.spec.features] == ["integer", "integer", "float", "integer", "integer"]
    ages = raw["age"].astype(int)
    age = d.spec.feature("age")
    assert age.min is not None and age.max is not None
    assert age.min < ages.min() and age.max > ages.max()  # a margin beyond what was seen


def test_a_telco_shaped_csv_drafts_types_ids_nulls_and_categories() -> None:
    raw = raw_of(telco_like(600, seed=1))
    d = draft(raw, target="Churn", name="Telco churn")
    spec = d.spec
    assert validate_frame(raw, spec).ok, validate_frame(raw, spec).failures[:5]
    assert spec.name == "telco-churn"
    assert spec.id_columns == ("customerID",)
    assert (spec.target.positive, spec.target.negative) == ("Yes", "No")
    assert spec.feature("SeniorCitizen").values == (0, 1)  # a 0/1 flag is a category
    assert spec.feature("tenure").type == "integer"
    assert spec.feature("MonthlyCharges").type == "float" and spec.feature("MonthlyCharges").step == 0.01
    total = spec.feature("TotalCharges")
    assert total.type == "float" and total.nullable
    assert set(spec.feature("PaymentMethod").values or ()) >= {"Bank transfer (automatic)", "Electronic check"}
    assert "No internet service" in (spec.feature("OnlineSecurity").values or ())
    notes = "\n".join(d.review)
    assert "customerID: taken as an id column" in notes and "TotalCharges" in notes and "'Yes' was taken" in notes
    assert {c for c, _, _ in d.inferred} == set(raw.columns)


def test_positive_must_be_given_when_it_cannot_be_guessed() -> None:
    raw = raw_of(pd.DataFrame({"x": [1, 2, 3, 4], "status": ["gone", "kept", "gone", "kept"]}))
    with pytest.raises(SpecDraftError, match="--positive"):
        draft(raw, target="status")
    d = draft(raw, target="status", positive="gone")
    assert (d.spec.target.positive, d.spec.target.negative) == ("gone", "kept")
    with pytest.raises(SpecDraftError, match="not one of"):
        draft(raw, target="status", positive="left")


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"x": [1, 2], "y": [0, 1]}), "no column 'churn'"),
        (pd.DataFrame({"x": [1, 2, 3], "churn": [0, 1, 2]}), "exactly two values"),
        (pd.DataFrame({"x": [1, 2, 3], "churn": [0, 1, None]}), "empty cells"),
        (pd.DataFrame({"monthly charges": [1, 2], "churn": [0, 1]}), "rename \\['monthly charges'\\]"),
        (pd.DataFrame({"x": [None, None], "churn": [0, 1]}), "empty in every row"),
    ],
)
def test_csvs_that_cannot_be_drafted_say_what_to_change(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(SpecDraftError, match=message):
        draft(raw_of(frame), target="churn")
