"""A run directory the runner cannot write its lock in is one clear message, not a
traceback: `run` when `.conductor/runs/` is read-only, `resume` when the run's own
directory is; once writable again the run resumes. Read-only by chmod where that binds (not root), else by a read-only bind
mount (root ignores chmod)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.testing.runner import cli, db_rows, latest_run, write_workflow

WF = """
version: 1
name: locks
tasks:
  A: {run: "echo a > a.txt"}
"""


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    if shutil.which("mount") is None:
        pytest.skip("no mount(8) to make a read-only bind mount")
    proc = subprocess.run(["mount", "--bind", "-o", "ro", str(path), str(path)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {proc.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(path)], check=False)


def _assert_clean(proc: subprocess.CompletedProcess[str], where: Path) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "cannot write" in proc.stderr and str(where) in proc.stderr
    assert "hint: make" in proc.stderr and "writable" in proc.stderr


def test_a_run_dir_without_write_access_is_a_message(repo: Path) -> None:
    write_workflow(repo, WF)
    assert cli(repo, "run", "wf.yaml", "--quiet").returncode == 0
    runs = repo / ".conductor" / "runs"
    with read_only(runs):  # `run`: its run directory cannot be made
        proc = cli(repo, "run", "wf.yaml", "--force", "--quiet")
    _assert_clean(proc, runs)
    run = latest_run(repo)
    # no runner will come for the run it recorded: interrupted now, not "still running"
    assert db_rows(repo, "SELECT state FROM runs WHERE id = ?", run)[0]["state"] == "interrupted"
    run_dir = runs / run
    run_dir.mkdir()
    with read_only(run_dir):  # `resume`: its lock file cannot be opened
        proc = cli(repo, "resume", run, "--quiet")
    _assert_clean(proc, run_dir)
    resumed = cli(repo, "resume", run, "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
