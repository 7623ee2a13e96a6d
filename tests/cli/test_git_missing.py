"""Without git on PATH every command that needs it says so, with a hint, and exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testing.runner import cli, latest_run, write_workflow

NO_GIT = "git is not installed or not on PATH"


@pytest.fixture
def no_git(tmp_path: Path) -> dict[str, str]:
    """A PATH with nothing on it: conductor itself starts by its absolute path."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    return {"PATH": str(empty)}


def assert_no_git(proc_stderr: str, returncode: int) -> None:
    assert returncode == 2, proc_stderr
    assert NO_GIT in proc_stderr
    assert "hint: install git" in proc_stderr
    assert "Traceback" not in proc_stderr and "Errno" not in proc_stderr


@pytest.mark.parametrize("args", [("run", "wf.yaml"), ("run", "wf.yaml", "--validate-only")])
def test_run_without_git(repo: Path, no_git: dict[str, str], args: tuple[str, ...]) -> None:
    write_workflow(repo, "version: 1\nname: t\ntasks:\n  A: {run: 'true'}\n")
    proc = cli(repo, *args, env=no_git)
    assert_no_git(proc.stderr, proc.returncode)
    assert not (repo / ".conductor").exists()

@pytest.mark.slow  # `run` without git stays in the quick set

def test_clean_and_rollback_without_git(repo: Path, no_git: dict[str, str]) -> None:
    write_workflow(repo, "version: 1\nname: t\ntasks:\n  A: {run: 'echo a > a.txt'}\n")
    assert cli(repo, "run", "wf.yaml").returncode == 0  # a run to clean and roll back
    for args in (("clean",), ("clean", "--dry-run"), ("rollback", latest_run(repo))):
        proc = cli(repo, *args, env=no_git)
        assert_no_git(proc.stderr, proc.returncode)


def test_validate_needs_no_git(repo: Path, no_git: dict[str, str]) -> None:
    write_workflow(repo, "version: 1\nname: t\ntasks:\n  A: {run: 'true'}\n")
    proc = cli(repo, "validate", "wf.yaml", env=no_git)
    assert proc.returncode == 0, proc.stderr
