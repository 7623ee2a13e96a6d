"""One run per workflow at a time, decided atomically: real processes started together.

The check "no run of this workflow is live" and the insert of the new run's row are one
store transaction (conductor/state/liveness.py `claim`), so of several `conductor run`
started at the same instant exactly one runs and the others exit 2 naming it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.testing.runner import cli, conductor_argv, db_rows, write_workflow

RACERS = 6
ROUNDS = 20

# The task holds its run open until the test drops a file, so the winner is certainly
# still live while the others try to start, however slowly the machine runs them.
HELD = """
version: 1
name: {name}
tasks:
  HOLD:
    run: "while [ ! -e {release} ]; do sleep 0.02; done; echo {name} > {name}.txt"
    timeout: 2m
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                   os.environ["PATH"]])}  # fmt: skip


def _race(repo: Path, workflow: str, n: int) -> list[tuple[int, str, str]]:
    """Start ``n`` `conductor run WORKFLOW --detach` at the same instant; (rc, out, err)."""
    barrier = threading.Barrier(n)
    results: list[tuple[int, str, str]] = []
    lock = threading.Lock()
    env = _env()

    def one() -> None:
        barrier.wait()
        proc = subprocess.Popen([*conductor_argv(), "run", workflow, "--detach"], cwd=repo,
                                env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip
        out, err = proc.communicate(timeout=120)
        with lock:
            results.append((proc.returncode, out, err))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _wait_ended(repo: Path, run_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = db_rows(repo, "SELECT state FROM runs WHERE id = ?", run_id)
        if row and row[0]["state"] not in ("running", "cancelling"):
            return str(row[0]["state"])
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not end within {timeout}s")


@pytest.mark.slow
def test_of_six_runs_of_one_workflow_started_together_exactly_one_runs(
    repo: Path, tmp_path: Path
) -> None:
    releases = [tmp_path / f"release-{i}" for i in range(ROUNDS)]
    try:
        for i, release in enumerate(releases):
            name = f"race-{i}"  # a fresh workflow each round: no up-to-date skips to race
            write_workflow(repo, HELD.format(name=name, release=release), f"{name}.yaml")
            results = _race(repo, f"{name}.yaml", RACERS)
            won = [r for r in results if r[0] == 0]
            lost = [r for r in results if r[0] != 0]
            assert len(won) == 1, f"round {i}: {results}"
            run_id = won[0][1].splitlines()[0]
            for rc, out, err in lost:
                assert rc == 2, f"round {i}: {rc} {out} {err}"
                assert f"run {run_id} of workflow `{name}` is still running" in err, err
                assert f"conductor cancel {run_id}" in err, err
                assert out == ""
            release.touch()
            assert _wait_ended(repo, run_id) == "succeeded"
    finally:
        for release in releases:  # never leave a runner waiting behind a failed round
            release.touch()
    runs = db_rows(repo, "SELECT name, COUNT(*) AS n FROM runs GROUP BY name")
    assert {r["name"]: r["n"] for r in runs} == {f"race-{i}": 1 for i in range(ROUNDS)}


SIDE = """
version: 1
name: {me}
tasks:
  MEET:
    # both runs must be running at once: each waits (up to ~20 s) for the other's mark
    run: >-
      touch {marks}/{me};
      for i in $(seq 1000); do [ -e {marks}/{other} ] && exit 0; sleep 0.02; done; exit 1
"""


@pytest.mark.slow  # an end-to-end run or two
def test_two_workflows_of_one_repository_run_side_by_side(repo: Path, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    write_workflow(repo, SIDE.format(me="left", other="right", marks=marks), "left.yaml")
    write_workflow(repo, SIDE.format(me="right", other="left", marks=marks), "right.yaml")
    ids = []
    for wf in ("left.yaml", "right.yaml"):
        proc = cli(repo, "run", wf, "--detach")
        assert proc.returncode == 0, proc.stderr
        ids.append(proc.stdout.splitlines()[0])
    assert [_wait_ended(repo, run_id) for run_id in ids] == ["succeeded", "succeeded"]


def test_a_run_refused_after_its_claim_leaves_no_trace(repo: Path) -> None:
    """The row is written first (to claim the workflow); a later refusal takes it out."""
    write_workflow(repo, """
        version: 1
        name: t
        tasks:
          A: {run: "echo a > a.txt"}
          B: {run: "echo b > b.txt", depends_on: [A]}
    """)  # fmt: skip
    proc = cli(repo, "run", "wf.yaml", "--task", "B")
    assert proc.returncode == 2
    assert "depend on tasks outside the selection that are not done: A" in proc.stderr
    assert db_rows(repo, "SELECT * FROM runs") == []
    assert db_rows(repo, "SELECT * FROM tasks") == []
    proc = cli(repo, "run", "wf.yaml")  # and the workflow is not held by the refused run
    assert proc.returncode == 0, proc.stdout + proc.stderr
