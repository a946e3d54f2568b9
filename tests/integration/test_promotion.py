"""Promotion is a compare-and-set and rollback goes only to gated versions: against a real MLflow server."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient

from contract.spec import DatasetSpec
from tests.conftest import DATA_PATH
from tests.support import train
from training import pipeline, registry
from training.settings import TrainSettings
from training.validate import validate_file

# No absolute floor and no allowed drop: a candidate passes exactly when it scores no worse than the champion.
SETTINGS = TrainSettings(
    _env_file=None, gate_min_f1=0, gate_min_roc_auc=0, gate_max_drop=0, bootstrap_rounds=100, cv_folds=3
)
STRONG_GRID = {"n_estimators": [100], "max_depth": [3], "learning_rate": [0.1]}
WEAK_GRID = {"n_estimators": [1], "max_depth": [1], "learning_rate": [0.1]}


@pytest.fixture(scope="module")
def experiment(mlflow_server: str) -> str:
    return registry.connect(mlflow_server, experiment="promotion-tests")


@pytest.fixture(autouse=True)
def _server(mlflow_server: str, experiment: str) -> None:
    """Every test talks to the server (other modules point MLflow at their embedded stores)."""
    mlflow.set_tracking_uri(mlflow_server)


@pytest.fixture(scope="module")
def trained(spec: DatasetSpec) -> dict[str, pipeline.Candidate]:
    """A strong and a weak candidate on the same split of the committed data (so their scores compare)."""
    valid = validate_file(DATA_PATH, spec)
    out = {}
    for label, grid in (("strong", STRONG_GRID), ("weak", WEAK_GRID)):
        settings = SETTINGS.model_copy(update={"grid": grid})
        out[label] = pipeline.assess(pipeline.fit(valid, spec, "test", settings), settings)
    assert out["strong"].report["metrics"]["roc_auc"] > out["weak"].report["metrics"]["roc_auc"] + 0.02
    return out


def named(spec: DatasetSpec, name: str) -> DatasetSpec:
    return DatasetSpec.from_yaml(spec.to_yaml().replace(f"name: {spec.name}", f"name: {name}", 1))


def candidate(trained: dict[str, pipeline.Candidate], label: str, name: str) -> pipeline.Candidate:
    """A fresh copy of a trained candidate, registered under model `name`, gated against its champion now."""
    c = copy.deepcopy(trained[label])
    c.spec = named(c.spec, name)
    return pipeline.decide(c, SETTINGS)


def champion(name: str) -> str | None:
    v = registry.champion(name)
    return None if v is None else str(v.version)


def versions(name: str) -> list[str]:
    return sorted((str(v.version) for v in MlflowClient().search_model_versions(f"name = '{name}'")), key=int)


def lock_exists(name: str) -> bool:
    return bool(MlflowClient().search_registered_models(f"name = '{name}{registry.LOCK_SUFFIX}'"))


def test_a_candidate_gated_against_a_champion_that_moved_is_gated_again(
    trained: dict[str, pipeline.Candidate], experiment: str
) -> None:
    """Both gated while there was no champion; the strong one promotes first; the weak one must not take the
    alias on its stale decision (the lost update): it is gated again against the strong one and fails."""
    name = "promo-moved"
    strong, weak = candidate(trained, "strong", name), candidate(trained, "weak", name)
    assert strong.decision and weak.decision and strong.decision.passed and weak.decision.passed
    assert strong.decision.champion_version is None and weak.decision.champion_version is None
    strong = pipeline.register(strong, SETTINGS, experiment)
    assert champion(name) == strong.version
    weak = pipeline.register(weak, SETTINGS, experiment)
    assert weak.decision is not None and not weak.decision.passed
    assert weak.decision.champion_version == strong.version
    assert weak.decision.reasons[0] == (
        f"FAIL: the champion moved from none to version {strong.version} after the gate, "
        "and the candidate does not pass against it"
    )
    assert champion(name) == strong.version  # unchanged
    assert weak.version in versions(name)  # registered, not promoted
    tags = MlflowClient().get_model_version(name, str(weak.version)).tags
    assert tags[registry.GATE_PASSED] == "false" and "churnguard.promoted" not in tags
    assert not lock_exists(name)


def test_a_candidate_that_beats_the_moved_champion_still_promotes(
    trained: dict[str, pipeline.Candidate], experiment: str
) -> None:
    name = "promo-moved-better"
    weak, strong = candidate(trained, "weak", name), candidate(trained, "strong", name)
    weak = pipeline.register(weak, SETTINGS, experiment)
    assert champion(name) == weak.version
    strong = pipeline.register(strong, SETTINGS, experiment)
    assert strong.decision is not None and strong.decision.passed
    assert strong.decision.champion_version == weak.version
    assert f"ok: the champion moved from none to version {weak.version} after the gate; gated again against it" in (
        strong.decision.reasons
    )
    assert champion(name) == strong.version


@pytest.mark.parametrize("round_", [1, 2])
def test_two_promotions_at_once_leave_the_better_candidate_champion(
    trained: dict[str, pipeline.Candidate], experiment: str, round_: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs, both gated against no champion, register at the same moment (two threads, one server). Each
    pauses after reading the champion, the weak one longer: without the lock both would read "no champion" and
    the weak one would take the alias last (the lost update). With it, whichever goes first, the alias ends on the
    strong candidate, and the weak one is promoted only if it went first."""
    name = f"promo-race-{round_}"
    cands = {label: candidate(trained, label, name) for label in ("strong", "weak")}
    pause = {id(cands["strong"]): 0.5, id(cands["weak"]): 3.0}
    compare = pipeline.regate_if_champion_moved

    def slow_compare(c: pipeline.Candidate, settings: TrainSettings) -> pipeline.Candidate:
        checked = compare(c, settings)
        time.sleep(pause[id(c)])  # the champion may move now, were it not for the lock
        return checked

    monkeypatch.setattr(pipeline, "regate_if_champion_moved", slow_compare)
    start = threading.Barrier(2)
    done: dict[str, pipeline.Candidate] = {}
    errors: list[BaseException] = []

    def run(label: str) -> None:
        try:
            start.wait(timeout=30)
            done[label] = pipeline.register(cands[label], SETTINGS, experiment, lock_wait=120)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(label,)) for label in cands]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    strong, weak = done["strong"], done["weak"]
    assert strong.decision is not None and weak.decision is not None
    assert champion(name) == strong.version and strong.decision.passed
    weak_first = int(str(weak.version)) < int(str(strong.version))  # versions are numbered under the lock
    assert weak.decision.passed is weak_first
    assert versions(name) == sorted([str(strong.version), str(weak.version)], key=int)
    assert not lock_exists(name)


def test_a_held_lock_makes_a_promotion_wait_then_it_proceeds(
    trained: dict[str, pipeline.Candidate], experiment: str
) -> None:
    name = "promo-held"
    c = candidate(trained, "strong", name)
    result: dict[str, Any] = {}
    with registry.promotion_lock(name):
        waiter = threading.Thread(
            target=lambda: result.update(c=pipeline.register(c, SETTINGS, experiment, lock_wait=60))
        )
        waiter.start()
        time.sleep(3)
        assert waiter.is_alive()  # waiting, not promoting alongside the holder
        assert champion(name) is None and versions(name) == []
    waiter.join(timeout=60)
    assert not waiter.is_alive()
    assert champion(name) == result["c"].version
    assert not lock_exists(name)


def test_a_held_lock_is_waited_for_a_bounded_time(trained: dict[str, pipeline.Candidate], experiment: str) -> None:
    name = "promo-timeout"
    c = candidate(trained, "strong", name)
    with registry.promotion_lock(name):
        start = time.monotonic()
        with pytest.raises(registry.PromotionLockTimeoutError, match="waited 2 s, nothing changed"):
            pipeline.register(c, SETTINGS, experiment, lock_wait=2)
        assert time.monotonic() - start < 15
    assert champion(name) is None and versions(name) == []  # nothing registered, nothing moved
    assert not lock_exists(name)


def test_a_stale_lock_is_broken(trained: dict[str, pipeline.Candidate], experiment: str) -> None:
    name = "promo-stale"
    MlflowClient().create_registered_model(
        f"{name}{registry.LOCK_SUFFIX}",
        tags={registry.LOCK_HOLDER_TAG: "gone:1:dead", registry.LOCK_SINCE_TAG: repr(time.time() - 3600)},
    )
    c = pipeline.register(candidate(trained, "strong", name), SETTINGS, experiment, lock_ttl=600, lock_wait=10)
    assert champion(name) == c.version
    assert not lock_exists(name)


def test_a_fresh_lock_is_not_broken(trained: dict[str, pipeline.Candidate], experiment: str) -> None:
    name = "promo-fresh"
    lock = f"{name}{registry.LOCK_SUFFIX}"
    MlflowClient().create_registered_model(
        lock, tags={registry.LOCK_HOLDER_TAG: "busy:1:alive", registry.LOCK_SINCE_TAG: repr(time.time())}
    )
    with pytest.raises(registry.PromotionLockTimeoutError, match="held by busy:1:alive"):
        pipeline.register(candidate(trained, "strong", name), SETTINGS, experiment, lock_ttl=600, lock_wait=2)
    assert champion(name) is None
    assert MlflowClient().get_registered_model(lock).tags[registry.LOCK_HOLDER_TAG] == "busy:1:alive"


def test_the_lock_is_released_when_the_block_fails(experiment: str) -> None:
    name = "promo-release"
    with pytest.raises(RuntimeError, match="boom"), registry.promotion_lock(name):
        assert lock_exists(name)
        raise RuntimeError("boom")
    assert not lock_exists(name)


# -- rollback, through the CLI ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gated_and_failed(
    trained: dict[str, pipeline.Candidate], experiment: str, spec: DatasetSpec, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Model `promo-rollback`: version 1 passed the gate (champion), version 2 failed it."""
    name = "promo-rollback"
    good = pipeline.register(candidate(trained, "strong", name), SETTINGS, experiment)
    strict = SETTINGS.model_copy(update={"gate_min_roc_auc": 0.999})
    bad = copy.deepcopy(trained["weak"])
    bad.spec = named(bad.spec, name)
    bad = pipeline.register(pipeline.decide(bad, strict), strict, experiment)
    assert bad.decision is not None and not bad.decision.passed
    home = tmp_path_factory.mktemp("rollback-home")
    spec_path = home / "spec.yaml"
    spec_path.write_text(named(spec, name).to_yaml())
    return {"name": name, "good": good.version, "bad": bad.version, "home": home, "spec": spec_path}


def rollback(server: str, case: dict[str, Any], *args: str) -> Any:
    return train(server, Path(case["home"]), "rollback", "--spec", str(case["spec"]), *args)


def test_rollback_to_a_version_that_failed_the_gate_is_refused(
    mlflow_server: str, gated_and_failed: dict[str, Any]
) -> None:
    case = gated_and_failed
    assert champion(case["name"]) == case["good"]
    result = rollback(mlflow_server, case, "--to", case["bad"])
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"version {case['bad']} of 'promo-rollback' did not pass the gate (gate_passed='false')" in result.stderr
    assert "--force" in result.stderr and "Traceback" not in result.stderr
    assert champion(case["name"]) == case["good"]


def test_rollback_with_force_moves_the_alias_and_warns(mlflow_server: str, gated_and_failed: dict[str, Any]) -> None:
    case = gated_and_failed
    result = rollback(mlflow_server, case, "--to", case["bad"], "--force")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"warning: version {case['bad']} did not pass the gate" in result.stderr
    assert f"champion moved from version {case['good']} to {case['bad']}" in result.stdout
    assert champion(case["name"]) == case["bad"]
    back = rollback(mlflow_server, case, "--to", case["good"])  # a gated version needs no --force
    assert back.returncode == 0, back.stdout + back.stderr
    assert "warning" not in back.stderr
    assert champion(case["name"]) == case["good"]
    assert not lock_exists(case["name"])
