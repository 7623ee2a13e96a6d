"""Losing a machine: a worker node dying mid-task, and the runner killed -9 then resumed.
Both slow (a node is started for the first, a runner process for the second)."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conductor.exec.sweep import marked, sweep
from conductor.run import remote_attempt
from conductor.run.attempt import Attempt
from conductor.run.outcome import Prior
from conductor.run.remote_attempt import Placement, run_remote
from conductor.spec.model import Pool
from tests.remote.conftest import LocalCluster
from tests.testing.engine import EngineResult, start, task, workflow
from tests.testing.repos import git, live_merges
from tests.testing.runner import cli, conductor_argv, db_rows, latest_run, write_workflow

pytestmark = pytest.mark.slow


def _until(what: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not _holds(what):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def _holds(what: Callable[[], bool]) -> bool:
    try:
        return what()
    except sqlite3.OperationalError:  # the runner made state.db but not yet its tables
        return False


def _hosts(repo: Path, task_id: str) -> list[str]:
    rows = db_rows(repo, "SELECT host FROM attempts WHERE task_id = ? ORDER BY n", task_id)
    return [r["host"] or "" for r in rows]


def test_a_node_lost_mid_task_is_retried_elsewhere_and_merged_once(
    repo: Path, ray_cluster: LocalCluster
) -> None:
    spot = ray_cluster.add("spot1", {"spot": 1}, {})
    pool = Pool("spot", executor="ray", resources={"spot": 1})
    wf = workflow(repo, task("N", agent="sh", run="sleep 6; echo n > n.txt", pool="spot"),
                  pools={"spot": pool})  # fmt: skip
    with start(wf) as h:
        # the run in a thread: Ray starts (and kills) nodes from the main thread only
        results: list[EngineResult] = []
        engine = threading.Thread(target=lambda: results.append(h.run(lambda runner: None)))
        engine.start()
        try:
            _until(lambda: _hosts(repo, "N") == [f"ray:{spot.node_id}"])
            ray_cluster.cluster.remove_node(spot, allow_graceful=False)
            ray_cluster.add("spot2", {"spot": 1}, {})  # where the retry can go
        finally:
            engine.join(180)
            sweep(f"{h.run_id}/", 0.0)  # the dead node's orphaned agent (same machine here)
        result = results[0]
        assert result.states()["N"] == "succeeded", result.tasks["N"]["error"]
        first, second = result.attempts["N"]
        assert first["state"] == "interrupted" and "worker node lost" in (first["error"] or "")
        assert second["host"] == f"ray:{ray_cluster.node_id('spot2')}" != first["host"]
        assert "task_retrying" in result.kinds("N")  # with `retries: 0`: it cost no retry
        assert result.merges("N") == 1


WORKFLOW = """
    version: 1
    name: t
    pools:
      gpu: {executor: ray, resources: {gpuish: 1}}
    tasks:
      A: {run: "sleep 4; echo a > a.txt", pool: gpu}
"""


def test_the_runner_killed_then_resumed_merges_once(repo: Path, ray_cluster: LocalCluster) -> None:
    write_workflow(repo, WORKFLOW)
    runner = subprocess.Popen([*conductor_argv(), "run", "wf.yaml"], cwd=repo,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _until(lambda: (repo / ".conductor" / "state.db").exists()
               and _hosts(repo, "A")[:1] == [f"ray:{ray_cluster.node_id('gpu')}"])  # fmt: skip
        run_id = latest_run(repo)
        _until(lambda: bool(marked(f"{run_id}/")))  # the agent runs on the worker
    finally:
        runner.kill()
        runner.wait()
    resumed = cli(repo, "resume", run_id, timeout=180)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rows = db_rows(repo, "SELECT n, state FROM attempts WHERE task_id = 'A' ORDER BY n")
    assert [r["state"] for r in rows] == ["interrupted", "succeeded"]
    assert len(live_merges(repo, "A")) == 1
    assert not marked(f"{run_id}/"), "a process of the killed runner's attempt is left"
    cache = ray_cluster.worker_dir("gpu") / "repo"
    left = cache / ".conductor" / "worktrees" / run_id
    assert not left.exists() or not any(left.iterdir()), "a worktree is left on the worker"
    assert f".attempts/{run_id}/" not in git(cache, "for-each-ref", "refs/heads/")


def test_a_pool_down_comes_back_with_a_node_that_fits(
    repo: Path, ray_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_attempt, "FIT_CHECK_S", 0.2)
    wf = workflow(repo, task("L", agent="sh", run="true"))
    with start(wf) as h:
        where = Placement("late", {"late": 1}, {}, address=ray_cluster.address)
        out = run_remote(Attempt(h.ctx, h.wf.tasks["L"], 1, Prior()), where)
        assert out.extras.get("infra") and "late" in h.ctx.pools_down
        ray_cluster.add("late", {"late": 1}, {})
        _until(lambda: "late" not in h.ctx.pools_down, timeout=30)
        out = run_remote(Attempt(h.ctx, h.wf.tasks["L"], 2, Prior()), where)
        assert out.ok, out.error
