"""The contributor hooks in .pre-commit-config.yaml run offline from the project venv and pass on the tree.

They run on a copy of the tracked files (several hooks fix files in place), so the checkout is never touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent


def git(*args: str, cwd: Path) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True).stdout


def test_pre_commit_hooks_pass_on_every_tracked_file(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("pre-commit needs git and a git checkout (this copy has none)")
    work = tmp_path / "tree"
    tracked = [p for p in git("ls-files", "-z", cwd=ROOT).decode().split("\0") if p and os.path.lexists(ROOT / p)]
    for rel in tracked:  # the working tree's content, uncommitted edits included; symlinks stay symlinks
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, work / rel, follow_symlinks=False)
    (work / ".venv").symlink_to(VENV)  # the hooks' entries are .venv/bin/...
    git("init", "-q", cwd=work)
    (work / ".git" / "info" / "exclude").write_text(".venv\n")
    git("add", "-A", cwd=work)
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "SKIP": "mypy"}  # mypy: .ci/test runs it
    result = subprocess.run(
        [str(VENV / "bin" / "pre-commit"), "run", "--all-files", "--show-diff-on-failure", "--color", "never"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    ran = [line for line in result.stdout.splitlines() if line.endswith("Passed")]
    assert len(ran) >= 7, result.stdout  # every hook ran (none was "no files to check") and passed
