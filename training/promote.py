"""Promote stage for a challenger in shadow: `champion` moves to the `challenger` version only after enough shadow
rows and no worse live quality, realized when both versions have enough labelled rows, else estimated (pure
decision; the evidence is read from the predictors' quality routes and summed over the replicas given)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass
class Live:
    """One version's live counts summed over replicas: rows and confusion cells, and the Brier sum."""

    rows: float = 0.0
    confusion: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("tp", "fp", "fn", "tn"), 0.0))
    brier_sum: float = 0.0

    def add(self, summary: dict[str, Any]) -> None:
        self.rows += summary["rows"]
        for cell, v in summary["confusion"].items():
            self.confusion[cell] += v
        if summary.get("brier") is not None:
            self.brier_sum += summary["brier"] * summary["rows"]

    @property
    def f1(self) -> float | None:
        c = self.confusion
        denominator = 2 * c["tp"] + c["fp"] + c["fn"]
        return 2 * c["tp"] / denominator if denominator > 0 else None

    @property
    def brier(self) -> float | None:
        return self.brier_sum / self.rows if self.rows > 0 else None


@dataclass
class Evidence:
    champion: str
    challenger: str
    shadow_rows: float = 0.0
    """Rows the challenger scored in shadow against this champion."""
    live: dict[tuple[str, str], Live] = field(default_factory=dict)
    """(version, source) -> counts; source "realized" or "estimated"."""

    def of(self, version: str, source: str) -> Live:
        return self.live.setdefault((version, source), Live())


def gather(urls: list[str], model: str, champion: str, challenger: str) -> Evidence:
    """Sum the quality routes of the replicas at `urls` (each counts its own share)."""
    evidence = Evidence(champion, challenger)
    for url in urls:
        r = requests.get(f"{url.rstrip('/')}/v1/models/{model}/quality", timeout=30)
        r.raise_for_status()
        body = r.json()
        shadow = body.get("challenger") or {}
        if shadow.get("model_version") == challenger:
            evidence.shadow_rows += sum(a["rows"] for a in shadow["against"] if a["champion_version"] == champion)
        for v in body["versions"]:
            if v["model_version"] in (champion, challenger):
                for source in ("realized", "estimated"):
                    evidence.of(v["model_version"], source).add(v[source])
    return evidence


@dataclass(frozen=True)
class Decision:
    passed: bool
    basis: str | None
    """"realized" or "estimated": which quality was compared."""
    reasons: list[str]


def decide(e: Evidence, *, min_shadow_rows: int, min_labelled_rows: int, max_drop: float) -> Decision:
    """Every rule with its outcome, failures first: enough shadow rows; then F1 no more than `max_drop` below the
    champion's and Brier no more than `max_drop` above, on realized quality when both versions have
    `min_labelled_rows` labelled rows, else on estimated quality."""
    fails: list[str] = []
    oks: list[str] = []

    def rule(ok: bool, text: str) -> None:
        (oks if ok else fails).append(("ok: " if ok else "FAIL: ") + text)

    rule(e.shadow_rows >= min_shadow_rows, f"{e.shadow_rows:,.0f} shadow rows vs minimum {min_shadow_rows:,}")
    labelled = min(e.of(e.champion, "realized").rows, e.of(e.challenger, "realized").rows)
    basis = "realized" if labelled >= min_labelled_rows else "estimated"
    oks.append(
        f"ok: compared on {basis} quality ({labelled:,.0f} labelled rows for the version with fewer, "
        f"minimum {min_labelled_rows:,} for realized)"
    )
    champ, chall = e.of(e.champion, basis), e.of(e.challenger, basis)
    if champ.f1 is None or chall.f1 is None or champ.brier is None or chall.brier is None:
        fails.append(f"FAIL: no {basis} quality for both versions yet")
    else:
        rule(
            chall.f1 >= champ.f1 - max_drop,
            f"{basis} F1 {chall.f1:.3f} (challenger {e.challenger}) vs {champ.f1:.3f} (champion {e.champion}), "
            f"allowed drop {max_drop:.3f}",
        )
        rule(
            chall.brier <= champ.brier + max_drop,
            f"{basis} Brier {chall.brier:.4f} (challenger) vs {champ.brier:.4f} (champion), "
            f"allowed rise {max_drop:.3f}",
        )
    return Decision(not fails, basis, fails + oks)
