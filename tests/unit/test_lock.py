"""requirements.lock: one exact version for every dependency of every extra, inside pyproject's ranges, and the
versions this environment (hence the tests) runs with, so `make install`, CI and the images agree."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support import ROOT

pytestmark = pytest.mark.unit


def locked() -> dict[str, Version]:
    """Name -> pinned version, for the pins whose markers hold on this interpreter."""
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate():
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = [r for reqs in project["optional-dependencies"].values() for r in reqs]
    return [Requirement(r) for r in project["dependencies"] + extras]


def test_every_declared_dependency_is_pinned_inside_its_range() -> None:
    pins = locked()
    env = default_environment()
    for req in project_requirements():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock (run `make lock`)"
        assert pins[name] in req.specifier, f"{req.name}=={pins[name]} is outside {req.specifier} (run `make lock`)"


def test_this_environment_runs_the_locked_versions() -> None:
    wrong = []
    for name, pinned in locked().items():
        try:
            installed = Version(version(name))
        except PackageNotFoundError:
            wrong.append(f"{name} not installed (locked {pinned})")
            continue
        if installed != pinned:
            wrong.append(f"{name} {installed} installed, {pinned} locked")
    assert not wrong, "the environment differs from requirements.lock (make install): " + "; ".join(wrong)
