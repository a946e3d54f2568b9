"""`python -m training feedback` against the session's real predictor: outcomes counted once in chunks, a re-run
counts nothing twice (the 409s name the replays, which are dropped), a bad row stops everything before sending,
a forged id stops at its chunk with earlier chunks counted, and an unreachable predictor exits 2."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import requests

from tests.support import free_port, train
from training.data import generate

MODEL = "churnguard"
FEATURES = ["age", "tenure_months", "monthly_charges", "contract_type", "num_tickets"]


def _labelled(url: str, rows: int, seed: int) -> list[tuple[str, int]]:
    frame = generate(rows, seed)
    body = {"instances": frame[FEATURES].to_dict("records")}
    r = requests.post(f"{url}/v1/models/{MODEL}:predict", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return list(zip([p["prediction_id"] for p in r.json()["predictions"]], frame["churn"].tolist(), strict=True))


def _csv(path: Path, rows: list[tuple[Any, Any]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prediction_id", "label"])
        writer.writerows(rows)
    return path


def _realized_rows(url: str) -> float:
    body = requests.get(f"{url}/v1/models/{MODEL}/quality", timeout=10).json()
    return float(sum(v["realized"]["rows"] for v in body["versions"]))


def _feedback(path: Path, url: str, tmp_path: Path, *extra: str) -> Any:
    return train("", tmp_path, "feedback", "--labels", str(path), "--url", url, *extra)


def test_outcomes_are_counted_once_and_a_rerun_is_safe(predictor_url: str, tmp_path: Path) -> None:
    labels = _csv(tmp_path / "labels.csv", _labelled(predictor_url, 600, 7) + _labelled(predictor_url, 600, 17))
    before = _realized_rows(predictor_url)
    first = _feedback(labels, predictor_url, tmp_path, "--chunk", "500")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "counted 1,200 outcome(s)" in first.stdout and "0 counted before" in first.stdout
    assert _realized_rows(predictor_url) == before + 1200
    again = _feedback(labels, predictor_url, tmp_path, "--chunk", "500")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "counted 0 outcome(s)" in again.stdout and "1,200 counted before, skipped" in again.stdout
    assert _realized_rows(predictor_url) == before + 1200


def test_an_invalid_row_stops_everything_before_sending(predictor_url: str, tmp_path: Path) -> None:
    rows: list[tuple[Any, Any]] = list(_labelled(predictor_url, 20, 8))
    rows[4] = (rows[4][0], "yes")
    rows[9] = ("", 1)
    before = _realized_rows(predictor_url)
    result = _feedback(_csv(tmp_path / "bad.csv", rows), predictor_url, tmp_path)
    assert result.returncode == 1
    assert "2 invalid value(s), nothing was sent" in result.stderr
    assert "must be 0 (stayed) or 1 (churned)" in result.stderr and "must not be empty" in result.stderr
    lines = {line.split("│")[1].strip() for line in result.stderr.splitlines() if line.count("│") >= 4}
    assert {"6", "11"} <= lines  # the header is line 1
    assert _realized_rows(predictor_url) == before
    no_header = tmp_path / "noheader.csv"
    no_header.write_text("id,churned\nabc,1\n")
    missing = _feedback(no_header, predictor_url, tmp_path)
    assert missing.returncode == 1 and "lacks the column(s) ['prediction_id', 'label']" in missing.stderr


def test_a_forged_id_stops_at_its_chunk(predictor_url: str, tmp_path: Path) -> None:
    rows = _labelled(predictor_url, 30, 9)
    forged = rows[25][0][:-2] + ("AA" if rows[25][0][-2:] != "AA" else "BA")
    rows[25] = (forged, rows[25][1])
    before = _realized_rows(predictor_url)
    result = _feedback(_csv(tmp_path / "forged.csv", rows), predictor_url, tmp_path, "--chunk", "10")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refused lines 22-31" in result.stderr and "forged" in result.stderr
    assert "counted before the refusal: 20 outcome(s)" in result.stderr
    assert _realized_rows(predictor_url) == before + 20


def test_an_unreachable_predictor_exits_2(tmp_path: Path) -> None:
    labels = _csv(tmp_path / "labels.csv", [("x" * 60, 1)])
    result = _feedback(labels, f"http://127.0.0.1:{free_port()}", tmp_path)
    assert result.returncode == 2 and "cannot send feedback" in result.stderr
