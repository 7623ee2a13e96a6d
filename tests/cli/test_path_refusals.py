"""Paths that could reach outside the repository are refused through the CLI, in a real
repository that stays exactly as it was: `validate` and `run` exit 2 with `wf.yaml:L:C:`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.spec.test_bad_inputs import CASES
from tests.testing.paths import BAD
from tests.testing.repos import git
from tests.testing.runner import cli

REFUSED = [
    "contains_escapes",
    "copy_absolute",
    "exists_absolute",
    "gate_exists_escapes",
    "glob_escapes",
    "input_escapes",
    "log_absolute",
    "log_escapes",
    "log_inside_git",
    "output_absolute",
    "output_inside_git",
    "prompt_file_absolute",
    "symlink_escapes",
]


def snapshot(repo: Path) -> tuple[str, str, list[str]]:
    """What a refused command must leave alone: the tree, every ref, the files in .git."""
    files = sorted(str(p.relative_to(repo)) for p in (repo / ".git").rglob("*"))
    return git(repo, "status", "--porcelain"), git(repo, "for-each-ref"), files


# `run` loads the file the same way before anything else: a few kinds are enough there.
CASES_BY_COMMAND = [("validate", n) for n in REFUSED] + [
    ("run", n)
    for n in ("log_inside_git", "output_absolute", "copy_absolute", "prompt_file_absolute")
]


@pytest.mark.slow  # each file is in tests/bad, which test_cli runs through the CLI too
@pytest.mark.parametrize(("command", "name"), CASES_BY_COMMAND)
def test_refused_with_location_and_repository_unchanged(
    repo: Path, command: str, name: str
) -> None:
    (repo / "wf.yaml").write_text((BAD / f"{name}.yaml").read_text())
    before = snapshot(repo)
    proc = cli(repo, command, "wf.yaml")
    line, col, message, _hint = CASES[name]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"wf.yaml:{line}:{col}: "), proc.stderr
    assert message in proc.stderr and "\n  hint: " in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(repo) == before
    assert not (repo / ".conductor").exists()


def test_log_into_git_never_touches_head(repo: Path) -> None:
    """The issue's `log: .git/HEAD`: refused before anything could write it."""
    head = (repo / ".git" / "HEAD").read_bytes()
    (repo / "wf.yaml").write_text(
        "version: 1\nname: t\nlog: .git/HEAD\ntasks:\n  A: {run: 'true'}\n"
    )
    proc = cli(repo, "run", "wf.yaml")
    assert proc.returncode == 2 and "wf.yaml:3:6: log: `.git/HEAD` is inside `.git`" in proc.stderr
    assert (repo / ".git" / "HEAD").read_bytes() == head
    assert git(repo, "for-each-ref", "refs/heads/conductor") == ""
