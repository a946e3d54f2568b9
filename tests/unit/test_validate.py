"""Validation rules, one by one: every failure comes back as (row, column, value, rule), nothing is coerced."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from training.spec import DatasetSpec
from training.validate import Failure, read_raw, validate_file, validate_frame

HEADER = "age,tenure_months,monthly_charges,contract_type,num_tickets,churn\n"
GOOD = ["30,12,50.5,0,1,1", "45,40,80.0,2,0,0", "60,3,99.99,1,5,1"]


def check(spec: DatasetSpec, *rows: str, header: str = HEADER):
    return validate_frame(read_raw(io.StringIO(header + "\n".join(rows) + "\n")), spec)


def test_good_rows_pass_typed(spec: DatasetSpec) -> None:
    r = check(spec, *GOOD)
    assert r.ok and len(r.valid) == 3
    assert str(r.valid["age"].dtype) == "int64" and str(r.valid["monthly_charges"].dtype) == "float64"


@pytest.mark.parametrize(
    ("row", "column", "value", "rule"),
    [
        ("30.7,12,50.5,0,1,1", "age", "30.7", "must be an integer"),
        ("abc,12,50.5,0,1,1", "age", "abc", "must be an integer"),
        ("17,12,50.5,0,1,1", "age", "17", "must be >= 18"),
        ("30,12,501,0,1,1", "monthly_charges", "501.0", "must be <= 500"),
        ("30,12,inf,0,1,1", "monthly_charges", "inf", "must be finite"),
        ("30,12,x,0,1,1", "monthly_charges", "x", "must be a number"),
        ("30,12,50.5,7,1,1", "contract_type", "7", "must be one of [0, 1, 2]"),
        ("30,12,50.5,1.5,1,1", "contract_type", "1.5", "must be one of [0, 1, 2]"),
        ("30,12,50.5,0,1,2", "churn", "2", "must be one of [0, 1]"),
        (",12,50.5,0,1,1", "age", "nan", "must not be empty"),
    ],
)
def test_each_rule_names_row_column_value(spec: DatasetSpec, row: str, column: str, value: str, rule: str) -> None:
    r = check(spec, *GOOD, row)
    assert Failure(4, column, value, rule) in r.failures
    assert not r.ok and len(r.valid) == 3  # the good rows stay available for quarantine mode
    assert r.rejected is not None and list(r.rejected["_row"]) == [4]


def test_every_failure_of_a_row_is_listed(spec: DatasetSpec) -> None:
    r = check(spec, *GOOD, "200,12,abc,5,1,1")
    got = {(f.column, f.rule) for f in r.failures}
    assert got == {
        ("age", "must be <= 100"),
        ("monthly_charges", "must be a number"),
        ("contract_type", "must be one of [0, 1, 2]"),
    }


def test_unknown_and_missing_columns(spec: DatasetSpec) -> None:
    header = "age,tenure_months,monthly_charges,contract_type,extra,churn\n"
    r = check(spec, "30,12,50.5,0,9,1", "31,12,50.5,0,9,0", header=header)
    assert Failure(None, "extra", "", "unknown column") in r.failures
    assert Failure(None, "num_tickets", "", "missing column") in r.failures
    assert r.fatal


def test_wrong_delimiter_is_reported_as_columns(spec: DatasetSpec) -> None:
    r = check(spec, "30;12;50.5;0;1;1", header=HEADER.replace(",", ";"))
    assert {f.rule for f in r.fatal} == {"unknown column", "missing column"}


def test_single_class_is_refused(spec: DatasetSpec) -> None:
    r = check(spec, "30,12,50.5,0,1,1", "31,12,50.5,0,1,1")
    assert r.failures == [Failure(None, "churn", "", "needs at least two classes")]


def test_single_class_after_removing_bad_rows(spec: DatasetSpec) -> None:
    r = check(spec, "30,12,50.5,0,1,1", "31,12,50.5,0,1,1", "x,12,50.5,0,1,0")
    assert Failure(None, "churn", "", "needs at least two classes") in r.failures


def test_duplicates_are_warned_not_dropped(spec: DatasetSpec) -> None:
    r = check(spec, *GOOD, GOOD[0])
    assert r.ok and len(r.valid) == 4
    assert r.warnings == [Failure(4, None, "", "duplicate of an earlier row")]


def test_id_collisions(tmp_path: Path) -> None:
    s = DatasetSpec.from_yaml(
        "name: d\ntarget: {name: y, positive: 1}\nid_columns: [id]\nfeatures:\n  - {name: a, type: float}\n"
    )
    r = validate_frame(read_raw(io.StringIO("id,a,y\nc1,1,0\nc2,2,1\nc1,3,0\n")), s)
    assert Failure(3, "id", "c1", "id must be unique") in r.failures


def test_nullable_feature_accepts_empty(spec: DatasetSpec) -> None:
    s = DatasetSpec.from_yaml(spec.to_yaml().replace("name: num_tickets", "name: num_tickets\n  nullable: true"))
    r = validate_frame(read_raw(io.StringIO(HEADER + "30,12,50.5,0,,1\n45,40,80,2,3,0\n")), s)
    assert r.ok
    assert r.valid["num_tickets"].isna().sum() == 1


@pytest.mark.parametrize(
    ("content", "rule"),
    [("", "file is empty"), (HEADER, "no data rows"), ('a,b\n"x,1\n', "not a readable CSV")],
)
def test_unreadable_files(spec: DatasetSpec, tmp_path: Path, content: str, rule: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(content)
    r = validate_file(path, spec)
    assert len(r.failures) == 1 and r.failures[0].rule.startswith(rule)
