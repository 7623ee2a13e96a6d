"""One remote attempt, driven directly: the repository goes out as a bundle, the agent runs
on the node the pool's resources pick, its commit comes back as a bundle and is merged."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from conductor.exec.sweep import marked
from conductor.run import remote_attempt
from conductor.run.attempt import Attempt
from conductor.run.outcome import Outcome, Prior
from conductor.run.remote_attempt import Placement, run_remote
from tests.remote.conftest import LocalCluster
from tests.testing.engine import Harness, start, task, workflow
from tests.testing.repos import attempt_worktrees, git


def _attempt(h: Harness, task_id: str) -> Attempt:
    return Attempt(h.ctx, h.wf.tasks[task_id], 1, Prior())


def _where(cluster: LocalCluster, **resources: float) -> Placement:
    return Placement("remote", resources, {}, address=cluster.address)


def test_a_result_comes_back_as_a_bundle_and_merges(repo: Path, ray_cluster: LocalCluster) -> None:
    wf = workflow(repo, task("A", agent="sh", run="echo remote > made.txt; echo out-line",
                             outputs=("made.txt",), touches=("made.txt",)))  # fmt: skip
    with start(wf) as h:
        out = run_remote(_attempt(h, "A"), _where(ray_cluster, gpuish=1))
        assert out.ok, out.error
        assert git(repo, "show", "conductor/t:made.txt").strip() == "remote"
        row = h.store.attempts(h.run_id, "A")[0]
        assert row["state"] == "succeeded" and row["files_changed"] == 1
        log = Path(row["log_path"]).read_text()
        assert "out-line" in log
        # the runner's repository never had a worktree for it: the work happened in the
        # worker's own cache, under its worker directory
        assert attempt_worktrees(repo) == []
        assert (ray_cluster.worker_dir("gpu") / "repo" / ".git").is_dir()
        assert row["host"] == f"ray:{ray_cluster.node_id('gpu')}" and row["pool"] == "remote"


def test_lines_stream_while_the_task_runs(repo: Path, ray_cluster: LocalCluster) -> None:
    script = 'echo first; "$CONDUCTOR_BIN" progress 50 halfway; sleep 2; echo second'
    wf = workflow(repo, task("S", agent="sh", run=script))
    with start(wf) as h:
        att = _attempt(h, "S")
        done: list[Outcome] = []
        worker = threading.Thread(target=lambda: done.append(run_remote(att, _where(ray_cluster))))
        worker.start()
        seen = ""
        deadline = time.monotonic() + 30
        while not done and time.monotonic() < deadline and "first" not in seen:
            time.sleep(0.1)
            seen = att.log_path.read_text() if att.log_path.exists() else ""
        assert "first" in seen and not done, "the first line reached the log before the end"
        worker.join(30)
        assert done and done[0].ok
        assert not marked(f"{h.run_id}/")
        # `conductor progress` on the worker reached the runner's store
        progress = [e["data"] for e in h.store.events(h.run_id) if e["kind"] == "task_progress"]
        assert {"percent": 50.0, "message": "halfway"} in progress, progress


def test_a_task_no_live_node_fits_marks_its_pool_down(
    repo: Path, ray_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_attempt, "FIT_CHECK_S", 0.2)
    wf = workflow(repo, task("U", agent="sh", run="true"))
    with start(wf) as h:
        out = run_remote(_attempt(h, "U"), _where(ray_cluster, nowhere=1))
        assert not out.ok and out.extras.get("infra"), out
        assert h.ctx.pools_down == {"remote": "no live Ray node fits pool remote"}
        assert h.store.attempts(h.run_id, "U")[0]["state"] == "interrupted"


def test_secrets_are_masked_on_the_worker_before_they_travel(
    repo: Path, ray_cluster: LocalCluster
) -> None:
    value = "hunter2-the-secret-value"
    wf = workflow(repo, task("K", agent="sh", run='echo "token is $TOKEN"',
                             env={"TOKEN": "${MY_SECRET}"}))  # fmt: skip
    env = {**os.environ, "MY_SECRET": value}
    with start(wf, environ=env) as h:
        out = run_remote(_attempt(h, "K"), _where(ray_cluster))
        assert out.ok, out.error
        log = h.store.attempts(h.run_id, "K")[0]["log_path"]
        text = Path(log).read_text()
        assert "token is ***" in text and value not in text
        assert value not in str([e["data"] for e in h.store.events(h.run_id)])
        assert value not in git(repo, "log", "--format=%B", "-1", out.result_commit or "")
