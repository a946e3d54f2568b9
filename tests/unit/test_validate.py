"""Validation rules, one by one: every failure comes back as (row, column, value, rule), nothing is coerced."""

from __future__ import annotations

import gzip
import io
import random
from pathlib import Path

import pandas as pd
import pytest

from contract.spec import DatasetSpec
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


# -- only what a person reads as the value (issue #12) ---------------------------------------------------------


def good_valid(spec: DatasetSpec) -> pd.DataFrame:
    return check(spec, *GOOD).valid


@pytest.mark.parametrize(
    ("row", "column", "value", "rule"),
    [
        ("30,12,34\x00.16,0,1,1", "monthly_charges", "34\x00.16", "contains a control character"),
        ("30,12,50.5,0,1,1\x00", "churn", "1\x00", "contains a control character"),
        ("30,12,50.5,0\x1b,1,1", "contract_type", "0\x1b", "contains a control character"),
        ("30\t,12,50.5,0,1,1", "age", "30\t", "contains a control character"),
        ("30,12\x7f,50.5,0,1,1", "tenure_months", "12\x7f", "contains a control character"),
        ("30,12,50.5,0,1\x85,1", "num_tickets", "1\x85", "contains a control character"),
        ('30,12,"50\n.5",0,1,1', "monthly_charges", "50\n.5", "contains a control character"),
        ("４０,12,50.5,0,1,1", "age", "４０", "must be an integer written with ASCII digits"),
        ("٤٠,12,50.5,0,1,1", "age", "٤٠", "must be an integer written with ASCII digits"),
        ("40\u00a0,12,50.5,0,1,1", "age", "40\u00a0", "must be an integer written with ASCII digits"),
        ("30,12,５０.５,0,1,1", "monthly_charges", "５０.５", "must be a number written with ASCII digits"),
        ("30,12,50.5,٠,1,1", "contract_type", "٠", "must be one of [0, 1, 2] written with ASCII digits"),
        ("30,12,50.5,0,1,١", "churn", "١", "must be one of [0, 1] written with ASCII digits"),
        ("4_0,12,50.5,0,1,1", "age", "4_0", "must be an integer written without underscores"),
        ("30,12,5_0.5,0,1,1", "monthly_charges", "5_0.5", "must be a number written without underscores"),
        ("30,12,50.5,1_0,1,1", "contract_type", "1_0", "must be one of [0, 1, 2] written without underscores"),
        ("1180591620717411303424,12,50.5,0,1,1", "age", "1180591620717411303424", "must be <= 100"),
        ("-1180591620717411303424,12,50.5,0,1,1", "age", "-1180591620717411303424", "must be >= 18"),
        (
            "30,12,50.5,1180591620717411303424,1,1",
            "contract_type",
            "1180591620717411303424",
            "must be one of [0, 1, 2]",
        ),
        ("1e3,12,50.5,0,1,1", "age", "1e3", "must be an integer"),
        ("0x1e,12,50.5,0,1,1", "age", "0x1e", "must be an integer"),
        ("30,12,NAN,0,1,1", "monthly_charges", "NAN", "must be a number"),
        ("30,12,1e,0,1,1", "monthly_charges", "1e", "must be a number"),
    ],
    ids=[
        "nul-in-number",
        "nul-in-target",
        "escape-in-category",
        "tab",
        "del",
        "c1-next-line",
        "newline-in-quoted-cell",
        "full-width-digits",
        "arabic-indic-digits",
        "no-break-space",
        "full-width-float",
        "arabic-indic-category",
        "arabic-indic-target",
        "underscore-int",
        "underscore-float",
        "underscore-category",
        "2**70-int",
        "-2**70-int",
        "2**70-category",
        "exponent-in-int",
        "hex-in-int",
        "nan-spelling",
        "bare-exponent",
    ],
)
def test_cells_are_read_only_as_written(spec: DatasetSpec, row: str, column: str, value: str, rule: str) -> None:
    r = check(spec, *GOOD, row)
    assert [f for f in r.failures if f.column == column] == [Failure(4, column, value, rule)]  # one message a cell
    assert r.rejected is not None and list(r.rejected["_row"]) == [4]
    pd.testing.assert_frame_equal(r.valid, good_valid(spec))  # the good rows, exactly as without the bad one


def test_beyond_64_bits_without_a_bound_says_so() -> None:
    s = DatasetSpec.from_yaml("name: d\ntarget: {name: y, positive: 1}\nfeatures:\n  - {name: n, type: integer}\n")
    good = "n,y\n1,0\n2,1\n"
    r = validate_frame(read_raw(io.StringIO(good + f"{2**70},0\n-{2**70},1\n")), s)
    assert r.failures == [
        Failure(3, "n", str(2**70), "must fit in a 64-bit integer"),
        Failure(4, "n", f"-{2**70}", "must fit in a 64-bit integer"),
    ]
    pd.testing.assert_frame_equal(r.valid, validate_frame(read_raw(io.StringIO(good)), s).valid)


def test_largest_64_bit_integer_is_read() -> None:
    s = DatasetSpec.from_yaml("name: d\ntarget: {name: y, positive: 1}\nfeatures:\n  - {name: n, type: integer}\n")
    r = validate_frame(read_raw(io.StringIO(f"n,y\n{2**63 - 1},0\n{-(2**63)},1\n")), s)
    assert r.ok and r.valid["n"].tolist() == [2**63 - 1, -(2**63)]


def test_control_characters_are_refused_in_ids_and_text_categories() -> None:
    s = DatasetSpec.from_yaml(
        "name: d\ntarget: {name: y, positive: 'Yes', negative: 'No'}\nid_columns: [id]\n"
        "features:\n  - {name: c, type: category, values: [a, b]}\n"
    )
    good = "id,c,y\nc1,a,No\nc2,b,Yes\n"
    r = validate_frame(read_raw(io.StringIO(good + "c3\x1b[2J,a,No\nc4,a\x00,Yes\nc5,b,Yes\x07\n")), s)
    assert r.failures == [
        Failure(3, "id", "c3\x1b[2J", "contains a control character"),
        Failure(4, "c", "a\x00", "contains a control character"),
        Failure(5, "y", "Yes\x07", "contains a control character"),
    ]
    pd.testing.assert_frame_equal(r.valid, validate_frame(read_raw(io.StringIO(good)), s).valid)


@pytest.mark.parametrize(
    ("column", "cell", "expected"),
    [
        ("monthly_charges", "1e1", 10.0),
        ("monthly_charges", "1.5E+1", 15.0),
        ("monthly_charges", ".5", 0.5),
        ("monthly_charges", "5.", 5.0),
        ("monthly_charges", "+7.25", 7.25),
        ("monthly_charges", "7.25 ", 7.25),
        ("age", "+30", 30),
        ("age", "030", 30),
        ("age", "30 ", 30),
    ],
)
def test_plain_numbers_are_read_as_a_person_reads_them(
    spec: DatasetSpec, column: str, cell: str, expected: float
) -> None:
    values = {"age": "30", "tenure_months": "12", "monthly_charges": "50.5", "contract_type": "0", "num_tickets": "1"}
    row = ",".join([*(cell if k == column else v for k, v in values.items()), "1"])
    r = check(spec, *GOOD, row)
    assert r.ok, r.failures
    assert r.valid[column].iloc[-1] == expected
    pd.testing.assert_frame_equal(r.valid.iloc[:3], good_valid(spec))


def test_an_empty_cell_does_not_hide_the_other_failures_of_its_column(spec: DatasetSpec) -> None:
    r = check(spec, *GOOD, ",12,50.5,0,1,1", "17,12,50.5,0,1,0")
    assert r.failures == [Failure(4, "age", "nan", "must not be empty"), Failure(5, "age", "17", "must be >= 18")]
    pd.testing.assert_frame_equal(r.valid, good_valid(spec))  # quarantine keeps the good rows


@pytest.mark.parametrize(
    ("header", "column", "rule"),
    [
        (" age ", "age ", 'column "age " looks like "age" with surrounding spaces'),
        (
            "tenure_months ",
            "tenure_months ",
            'column "tenure_months " looks like "tenure_months" with surrounding spaces',
        ),
        ("Age", "Age", 'column "Age" looks like "age" in another case (names are case-sensitive)'),
        (
            "AGE ",
            "AGE ",
            'column "AGE " looks like "age" with surrounding spaces and in another case (names are case-sensitive)',
        ),
    ],
)
def test_a_misnamed_header_is_one_message(spec: DatasetSpec, header: str, column: str, rule: str) -> None:
    name = column.strip().lower()
    r = check(spec, *GOOD, header=HEADER.replace(name, header, 1))
    assert r.failures == [Failure(None, column, "", rule)]
    assert r.fatal and r.valid.empty


def test_a_misnamed_header_next_to_an_unknown_one(spec: DatasetSpec) -> None:
    header = HEADER.replace("age", "Age", 1).replace("num_tickets", "tickets")
    r = check(spec, *GOOD, header=header)
    assert set(r.failures) == {
        Failure(None, "Age", "", 'column "Age" looks like "age" in another case (names are case-sensitive)'),
        Failure(None, "tickets", "", "unknown column"),
        Failure(None, "num_tickets", "", "missing column"),
    }


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    return path


GOOD_BYTES = (HEADER + "\n".join(GOOD) + "\n").encode()


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (random.Random(12).randbytes(4096), "not UTF-8 text (byte 0x"),
        (gzip.compress(GOOD_BYTES, mtime=0), "not UTF-8 text (byte 0x8b at offset 1)"),
        (GOOD_BYTES.decode().encode("utf-16"), "not UTF-8 text (byte 0xff at offset 0); it looks like UTF-16"),
        (GOOD_BYTES.decode().encode("utf-16-le"), "binary file, not CSV text"),
        (b"\0" * 4096, "binary file, not CSV text (4,096 NUL bytes"),
        (GOOD_BYTES + b"\0" * 200, "binary file, not CSV text (200 NUL bytes"),
    ],
    ids=["random-bytes", "gzip", "utf-16-bom", "utf-16-no-bom", "nul-bytes", "nul-padding"],
)
def test_binary_and_non_utf8_files_are_one_file_level_failure(
    spec: DatasetSpec, tmp_path: Path, data: bytes, rule: str
) -> None:
    r = validate_file(write(tmp_path, data), spec)
    assert len(r.failures) == 1 and r.failures[0].row is None
    assert r.failures[0].rule.startswith(rule), r.failures[0].rule
    assert r.valid.empty


def test_a_directory_is_a_file_level_failure(spec: DatasetSpec, tmp_path: Path) -> None:
    r = validate_file(tmp_path, spec)
    assert r.failures == [Failure(None, None, str(tmp_path), "is a directory, not a CSV file")]


def test_a_nul_in_one_cell_of_a_text_file_is_reported_on_its_row(spec: DatasetSpec, tmp_path: Path) -> None:
    r = validate_file(write(tmp_path, GOOD_BYTES + b"30,12,34\x00.16,0,1,1\n"), spec)
    assert r.failures == [Failure(4, "monthly_charges", "34\x00.16", "contains a control character")]
    pd.testing.assert_frame_equal(r.valid, good_valid(spec))


def test_a_utf8_bom_is_not_part_of_the_first_column(spec: DatasetSpec, tmp_path: Path) -> None:
    r = validate_file(write(tmp_path, b"\xef\xbb\xbf" + GOOD_BYTES), spec)
    assert r.ok
    pd.testing.assert_frame_equal(r.valid, good_valid(spec))
