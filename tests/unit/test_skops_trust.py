"""The predictor loads skops files without skops' import-time scan of scikit-learn, applying skops' default trust
rule itself to the types the file holds (predictor/champion.py). These tests fail loudly when skops or scikit-learn
move under that: the scan, the rule, and what a model folder may whitelist."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.utils import all_estimators

from contract.spec import DatasetSpec
from predictor import champion
from training import model, registry
from training.data import generate

ROOT = Path(__file__).resolve().parents[2]


class Passthrough(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """A harmless estimator from outside scikit-learn: skops refuses it unless someone vouches for it."""

    def fit(self, x: object, y: object = None) -> Passthrough:
        return self

    def transform(self, x: object) -> object:
        return x


LITE = """
import io, json, sys
from pathlib import Path
import pandas as pd
from predictor import champion
sio = champion.import_skops()
import skops.io._trusted_types as t, sklearn.utils
args = json.loads(sys.argv[1])
out = {
    "defaults": t.SKLEARN_ESTIMATOR_TYPE_NAMES,
    "restored": sklearn.utils.all_estimators.__module__,
    "testing_imported": "sklearn.utils._testing" in sys.modules,
    "pytest_imported": "pytest" in sys.modules,
    "types": {f: sio.get_untrusted_types(file=str(Path(d) / "model.skops")) for f, d in args["folders"].items()},
    "proba": {
        f: champion.load_pipeline(Path(d)).predict_proba(pd.read_csv(io.StringIO(args["csv"])))[:, 1].tolist()
        for f, d in args["folders"].items()
    },
}
print(json.dumps(out))
"""


def saved(pipe: Pipeline, folder: Path, trusted: list[str] | None = None) -> Path:
    mlflow.sklearn.save_model(
        pipe,
        str(folder),
        serialization_format="skops",
        skops_trusted_types=registry.trusted_types(pipe) if trusted is None else trusted,
        pip_requirements=["scikit-learn"],  # stated: inferring them runs the model in a subprocess
    )
    return folder


@pytest.fixture(scope="module")
def folders(spec: DatasetSpec, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    df = generate(300, seed=5)
    x, y = df[spec.feature_names], df["churn"]
    small = {"gbm": {"model__n_estimators": 20}, "hgb": {"model__max_iter": 20}, "logistic": {}}
    return {
        family: saved(
            model.build(family, spec, seed=0).set_params(**params).fit(x, y), tmp_path_factory.mktemp(family) / "model"
        )
        for family, params in small.items()
    }


@pytest.fixture(scope="module")
def rows(spec: DatasetSpec) -> pd.DataFrame:
    return generate(50, seed=9)[spec.feature_names]


@pytest.fixture(scope="module")
def lite(folders: dict[str, Path], rows: pd.DataFrame) -> dict[str, Any]:
    """One fresh interpreter, set up as `python -m predictor` sets itself up (`champion.import_skops()` first)."""
    args = json.dumps({"folders": {f: str(d) for f, d in folders.items()}, "csv": rows.to_csv(index=False)})
    proc = subprocess.run([sys.executable, "-c", LITE, args], capture_output=True, text=True, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_import_skips_the_scan_and_restores_scikit_learn(lite: dict[str, Any]) -> None:
    assert lite["defaults"] == [], "skops no longer builds its default trusted list from all_estimators at import"
    assert lite["restored"] == "sklearn.utils.discovery"
    assert lite["testing_imported"] is False and lite["pytest_imported"] is False


def test_the_rule_accepts_exactly_what_all_estimators_lists() -> None:
    listed = [f"{c.__module__}.{c.__qualname__}" for _, c in all_estimators()]
    assert len(listed) > 150
    assert [t for t in listed if not champion.default_trusted(t)] == []
    for not_listed in (
        "sklearn.base.BaseEstimator",
        "sklearn.ensemble._base.BaseEnsemble",  # abstract
        "sklearn.utils._bunch.Bunch",  # not an estimator
        "sklearn.tree._tree.Tree",  # Cython internals: vouched for by the MLmodel file, not by default
        "sklearn.utils._testing.MinimalClassifier",  # only in a private module
        "sklearn.no_such.Thing",
        "numpy.ndarray",
        "builtins.eval",
        "os.system",
        f"{__name__}.Passthrough",
    ):
        assert champion.default_trusted(not_listed) is False, not_listed


def test_the_rule_matches_skops_defaults_for_every_type_in_the_model_files(lite: dict[str, Any]) -> None:
    listed = {f"{c.__module__}.{c.__qualname__}" for _, c in all_estimators()}
    for family, found in lite["types"].items():  # without the scan: every non-primitive type in the file
        assert any(t.endswith(".Pipeline") for t in found), family
        assert {t for t in found if champion.default_trusted(t)} == listed.intersection(found), family


def test_every_family_loads_without_the_scan_and_predicts_the_same(
    lite: dict[str, Any], folders: dict[str, Path], rows: pd.DataFrame
) -> None:
    for family, folder in folders.items():
        expected = mlflow.sklearn.load_model(str(folder)).predict_proba(rows)[:, 1]
        assert np.array_equal(np.asarray(lite["proba"][family]), expected), family


def test_a_type_from_outside_scikit_learn_is_refused_even_when_the_model_folder_lists_it(
    spec: DatasetSpec, tmp_path: Path
) -> None:
    df = generate(100, seed=1)
    pipe = Pipeline([("pass", Passthrough()), ("model", model.logistic(spec, seed=0))])
    pipe.fit(df[spec.feature_names], df["churn"])
    listed = [
        *registry.trusted_types(model.logistic(spec, seed=0).fit(df[spec.feature_names], df["churn"])),
        f"{__name__}.Passthrough",
    ]
    folder = saved(pipe, tmp_path / "model", trusted=listed)
    assert (
        f"{__name__}.Passthrough"
        in yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["sklearn"]["skops_trusted_types"]
    )
    with pytest.raises(champion.LoadError, match=r"not trusted: \['tests\.unit\.test_skops_trust\.Passthrough'\]"):
        champion.load_pipeline(folder)


def test_only_skops_files_are_served(spec: DatasetSpec, tmp_path: Path) -> None:
    df = generate(100, seed=2)
    pipe = model.logistic(spec, seed=0).fit(df[spec.feature_names], df["churn"])
    mlflow.sklearn.save_model(pipe, str(tmp_path / "model"), serialization_format="cloudpickle", pip_requirements=[])
    with pytest.raises(champion.LoadError, match="saved as 'cloudpickle'; only skops files are served"):
        champion.load_pipeline(tmp_path / "model")
