"""Feedback stage: labelled outcomes from a CSV of `prediction_id,label` sent to a predictor's feedback route in
chunks (docs/quality.md). Every row is checked before anything is sent; a chunk is counted whole or not at all,
and a re-run against the same replica counts nothing twice (its 409 names the replays, which are dropped)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

COLUMNS = ("prediction_id", "label")
MAX_RETRIES = 100
"""409 answers one chunk may get before giving up (each names up to 50 replays, which are then dropped)."""


@dataclass(frozen=True)
class Problem:
    line: int
    """The CSV line (the header is line 1)."""
    field: str
    value: Any
    rule: str


class LabelsInvalidError(ValueError):
    """The CSV is unreadable or has rows that break a rule: nothing was sent."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class FeedbackRejectedError(RuntimeError):
    """The predictor refused a chunk (400, 413, 422): it and every later chunk were not counted; earlier chunks were."""

    def __init__(self, message: str, problems: list[Problem], sent: Sent) -> None:
        super().__init__(message)
        self.problems, self.sent = problems, sent


@dataclass
class Sent:
    accepted: int = 0
    replayed: int = 0
    """Rows the predictor had counted before (dropped and not sent again)."""
    by_model_version: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    line: int
    prediction_id: str
    label: int


def read_labels(path: Path) -> list[Row]:
    """The rows of `path`; LabelsInvalidError listing every broken row (line, field, value, rule) otherwise."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise LabelsInvalidError(
                    f"{path}: header {reader.fieldnames} lacks the column(s) {missing}: "
                    "the file must have the columns prediction_id,label"
                )
            rows, problems = [], []
            for line, item in enumerate(reader, start=2):
                pid, label = (item.get("prediction_id") or "").strip(), (item.get("label") or "").strip()
                if not pid:
                    problems.append(Problem(line, "prediction_id", pid, "must not be empty"))
                if label not in ("0", "1"):
                    problems.append(Problem(line, "label", label, "must be 0 (stayed) or 1 (churned)"))
                elif pid:
                    rows.append(Row(line, pid, int(label)))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LabelsInvalidError(f"{path}: cannot read it as a CSV: {exc}") from exc
    if problems:
        raise LabelsInvalidError(f"{path}: {len(problems)} invalid value(s), nothing was sent", problems)
    if not rows:
        raise LabelsInvalidError(f"{path}: no rows after the header, nothing to send")
    return rows


def send(url: str, model: str, rows: list[Row], *, chunk: int = 1000, timeout: float = 60) -> Sent:
    """POST the rows in chunks of `chunk`. A 409 names replayed rows: they are dropped and the rest is sent again.
    A 4xx refusal raises FeedbackRejectedError with the rows named by their CSV line; network and 5xx errors raise
    requests' exceptions. Rows of chunks answered before the error stay counted."""
    endpoint = f"{url.rstrip('/')}/v1/models/{model}/feedback"
    sent = Sent()
    with requests.Session() as session:
        for start in range(0, len(rows), chunk):
            pending = rows[start : start + chunk]
            for _ in range(MAX_RETRIES):
                if not pending:
                    break
                body = {"outcomes": [{"prediction_id": r.prediction_id, "label": r.label} for r in pending]}
                answer = session.post(endpoint, json=body, timeout=timeout)
                if answer.status_code == 200:
                    counted = answer.json()
                    sent.accepted += counted["accepted"]
                    for version, n in counted["by_model_version"].items():
                        sent.by_model_version[version] = sent.by_model_version.get(version, 0) + n
                    break
                if answer.status_code == 409:
                    # replays only; with no row named, another request counted one meanwhile: send again
                    replayed = {d["row"] for d in answer.json().get("details", [])}
                    sent.replayed += len(replayed)
                    pending = [r for i, r in enumerate(pending) if i not in replayed]
                    continue
                if answer.status_code in (400, 413, 422):
                    details = answer.json().get("details", [])
                    problems = [
                        Problem(pending[d["row"]].line, d["field"].rsplit(".", 1)[-1], d["value"], d["rule"])
                        for d in details
                        if isinstance(d.get("row"), int) and 0 <= d["row"] < len(pending)
                    ]
                    first, last = pending[0].line, pending[-1].line
                    raise FeedbackRejectedError(
                        f"the predictor refused lines {first}-{last} ({answer.json().get('error')}, "
                        f"{answer.json().get('error_count', len(problems))} outcome(s)): they and later lines were "
                        "not counted",
                        problems,
                        sent,
                    )
                answer.raise_for_status()
                raise requests.HTTPError(f"unexpected answer {answer.status_code} from {endpoint}: {answer.text}")
            else:
                raise requests.HTTPError(f"{endpoint} kept answering 409 for lines from {pending[0].line}")
    return sent
