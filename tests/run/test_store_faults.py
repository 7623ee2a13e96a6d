"""Store faults during a run: a full disk stops it cleanly and resumably; another
process holding `state.db` locked is waited on, with a warning, and every task succeeds.

Real processes, real SQLite: a small tmpfs mounted on `.conductor` (the disk that fills),
and a second process holding `BEGIN EXCLUSIVE` for longer than SQLite's busy timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testing.repos import git
from tests.testing.runner import cli, conductor_argv, db_rows, latest_run, write_workflow

NO_DISK_ALERT = {"CONDUCTOR_MIN_FREE_DISK_MB": "0"}  # the tmpfs is small on purpose

WF = """
version: 1
name: faults
defaults: {{retries: 0}}  # a store fault must not cost an attempt, let alone fail one
tasks:
  A:
    run: "echo work > work.txt; while [ ! -e {release} ]; do sleep 0.1; done"
    timeout: 3m
  B: {{run: "echo b > b.txt", depends_on: [A]}}
  C: {{run: "echo c > c.txt"}}
"""


@pytest.fixture
def small_disk(repo: Path) -> Iterator[Path]:
    """`.conductor` on a 2 MB tmpfs."""
    state = repo / ".conductor"
    state.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(state)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip()}")
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def _start(repo: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    import os

    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    return subprocess.Popen([*conductor_argv(), "run", "wf.yaml"], cwd=repo, text=True,
                            env={**os.environ, "PATH": path, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _wait_for(what: str, check: object, timeout: float = 60) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _running(repo: Path, task: str) -> bool:
    db = repo / ".conductor" / "state.db"
    if not db.exists():
        return False
    try:
        rows = db_rows(repo, "SELECT state FROM attempts WHERE task_id = ?", task)
    except Exception:  # not created yet
        return False
    return bool(rows) and rows[0]["state"] == "running"


def test_disk_full_during_a_run_stops_it_cleanly_and_resume_finishes(
    repo: Path, small_disk: Path
) -> None:
    release = repo.parent / "release"
    write_workflow(repo, WF.format(release=release))
    proc = _start(repo, NO_DISK_ALERT)
    _wait_for("A to run", lambda: _running(repo, "A") and (repo / ".conductor/worktrees").exists())
    time.sleep(0.5)  # A has written its work
    ballast = small_disk / "ballast"
    subprocess.run(["dd", "if=/dev/zero", f"of={ballast}", "bs=64k"], capture_output=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in out + err
    assert "database or disk is full" in err
    assert "conductor resume" in err
    run = latest_run(repo)
    # A's work is on its attempt branch although the store could not record it
    branch = f"conductor/faults.attempts/{run}/A/1"
    assert git(repo, "show", f"{branch}:work.txt") == "work"
    status = cli(repo, "status", env=NO_DISK_ALERT)
    assert status.returncode == 0, status.stderr
    assert "interrupted" in status.stdout
    assert f"conductor resume {run}" in status.stdout
    shown = cli(repo, "status", "--json", env=NO_DISK_ALERT)
    assert "running" not in {t["state"] for t in json.loads(shown.stdout)["tasks"]}
    ballast.unlink()
    release.touch()
    resumed = cli(repo, "resume", run, "--quiet", env=NO_DISK_ALERT)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    states = {r["task_id"]: r["state"] for r in db_rows(repo, "SELECT * FROM tasks")}
    assert states == {"A": "succeeded", "B": "succeeded", "C": "succeeded"}
    assert git(repo, "show", "conductor/faults:work.txt") == "work"


HOLD = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("ROLLBACK")
"""


@pytest.mark.slow
def test_a_store_locked_for_35s_is_waited_on_with_a_warning(repo: Path) -> None:
    release = repo.parent / "release"
    write_workflow(repo, WF.format(release=release))
    proc = _start(repo, {})
    _wait_for("A to run", lambda: _running(repo, "A"))
    db = repo / ".conductor" / "state.db"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db), "35"], text=True,
                              stdout=subprocess.PIPE)  # fmt: skip
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    release.touch()  # A finishes and its writes meet the lock
    holder.wait(timeout=60)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in out + err
    assert "locked by another process" in out + err
    log = (repo / ".conductor" / "conductor.log").read_text()
    assert "locked by another process" in log
    rows = db_rows(repo, "SELECT * FROM tasks")
    assert {r["task_id"]: (r["state"], r["attempts"]) for r in rows} == {
        "A": ("succeeded", 1), "B": ("succeeded", 1), "C": ("succeeded", 1)}  # fmt: skip


def test_a_full_disk_under_the_debug_log_prints_no_traceback(
    small_disk: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import contextlib
    import logging

    from conductor.run.debuglog import close_runner_log, setup_runner_log

    logger = setup_runner_log(small_disk, "git version 2.40.0")
    try:
        with (small_disk / "ballast").open("wb") as fh, contextlib.suppress(OSError):
            fh.write(b"0" * 4_000_000)  # fills the disk
        for _ in range(200):
            logger.warning("%s", "x" * 1000)
    finally:
        close_runner_log(small_disk)
        logging.getLogger("conductor").handlers.clear()
    assert "Traceback" not in capfd.readouterr().err



@pytest.fixture
def small_runs_disk(repo: Path) -> Iterator[Path]:
    """`.conductor/runs` (the agents' logs) alone on a 2 MB tmpfs: `state.db` keeps working,
    so only the log can tell the run that the disk is full."""
    runs = repo / ".conductor" / "runs"
    runs.mkdir(parents=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(runs)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.strip()}")
    try:
        yield runs
    finally:
        subprocess.run(["umount", "-l", str(runs)], check=False)


FILLS = """
version: 1
name: faults
defaults: {{retries: 0}}
tasks:
  A:
    # fills the disk under the logs once, then prints ~1.5 MB its log cannot take
    run: |
      echo work > work.txt
      if [ ! -e {marker} ]; then
        touch {marker}
        dd if=/dev/zero of="$CONDUCTOR_STATE_DIR/runs/ballast" bs=64k 2>/dev/null
        for i in $(seq 1 40000); do echo "line $i of output after the disk filled"; done
      fi
"""


def test_an_agent_log_on_a_full_disk_ends_the_run_resumably(
    repo: Path, small_runs_disk: Path
) -> None:
    write_workflow(repo, FILLS.format(marker=repo.parent / "filled"))
    proc = _start(repo, NO_DISK_ALERT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert "Traceback" not in out + err
    assert "No space left on device" in err and "conductor resume" in err
    run = latest_run(repo)
    assert f"runs/{run}/logs/A-1.log" in err
    assert git(repo, "show", f"conductor/faults.attempts/{run}/A/1:work.txt") == "work"
    (small_runs_disk / "ballast").unlink()
    resumed = cli(repo, "resume", run, "--quiet", env=NO_DISK_ALERT)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert git(repo, "show", "conductor/faults:work.txt") == "work"
    # the gap in A's first log is explained on the disk that still had room
    note = f"cannot write {small_runs_disk / run / 'logs' / 'A-1.log'}"
    assert note in (repo / ".conductor" / "conductor.log").read_text()
