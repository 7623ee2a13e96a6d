"""conductor's git calls see the process environment as it is now, cleaned of the
variables git leaks to hooks, although the cleaning is cached between calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor.git import cmd
from tests.testing.repos import make_repo


def probe(repo: Path) -> str:
    return cmd.run(["config", "--get", "conductor.probe"], repo).stdout


def test_a_changed_environment_reaches_the_next_git_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "r")
    assert probe(repo) == ""
    for key, value in (("COUNT", "1"), ("KEY_0", "conductor.probe"), ("VALUE_0", "one")):
        monkeypatch.setenv(f"GIT_CONFIG_{key}", value)
    assert probe(repo) == "one"
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "two")
    assert probe(repo) == "two"
    monkeypatch.delenv("GIT_CONFIG_COUNT")
    assert probe(repo) == ""


def test_leaked_repository_variables_never_reach_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "r")
    assert cmd.run(["rev-parse", "--git-dir"], repo).stdout == ".git"
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))  # as inside a hook
    assert cmd.run(["rev-parse", "--git-dir"], repo).stdout == ".git"
    full = cmd._process_env()
    full["MUTATED"] = "1"  # a caller's changes stay its own
    assert "MUTATED" not in cmd._process_env()
