"""Ray pools through the real engine: placement by resources and labels, the stop signal
and the timeout reaching the remote process tree, and preflight of the cluster."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from conductor.exec.sweep import marked
from conductor.run.engine import Runner
from conductor.spec.model import Pool, Task
from tests.remote.conftest import LocalCluster
from tests.testing.engine import Harness, start, task, workflow
from tests.testing.repos import attempt_worktrees
from tests.testing.runner import cli, write_workflow

GPU = Pool("gpu", executor="ray", resources={"gpuish": 1})
ZONE_A = Pool("zone-a", executor="ray", labels={"zone": "a"})
# a command whose tree outlives its leader unless stopped: a setsid'd grandchild
LINGER = "setsid sleep 300 & sleep 300"


def _remote(task_id: str, pool: Pool, run: str, **fields: object) -> Task:
    return task(task_id, agent="sh", run=run, pool=pool.name, **fields)


def _nodes(h: Harness) -> dict[str, str]:
    return {a["task_id"]: a["host"] for a in h.store.attempts(h.run_id)}


def test_tasks_land_on_the_nodes_their_pools_fit(repo: Path, ray_cluster: LocalCluster) -> None:
    wf = workflow(repo, _remote("G", GPU, "echo g > g.txt"), _remote("A", ZONE_A, "echo a > a.txt"),
                  pools={"gpu": GPU, "zone-a": ZONE_A})  # fmt: skip
    with start(wf) as h:
        result = h.drive()
        assert result.state == "succeeded", {t: r["error"] for t, r in result.tasks.items()}
        hosts = _nodes(h)
        assert hosts["G"] == f"ray:{ray_cluster.node_id('gpu')}"
        assert hosts["A"] == f"ray:{ray_cluster.node_id('head')}"
        assert {a["pool"] for a in h.store.attempts(h.run_id)} == {"gpu", "zone-a"}
        assert result.merges("G") == 1 and result.show(str(result.head), "a.txt") == "a"
        assert attempt_worktrees(repo) == []


def _wait_for_marked(prefix: str, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = marked(prefix)
        if len(found) >= 2:  # the shell's sleep and the setsid'd one
            return found
        time.sleep(0.1)
    raise AssertionError("the remote command never started")


def test_cancel_stops_the_whole_remote_tree(repo: Path, ray_cluster: LocalCluster) -> None:
    wf = workflow(repo, _remote("C", GPU, LINGER), pools={"gpu": GPU})
    with start(wf) as h:

        def cancel_once_running() -> None:
            _wait_for_marked(f"{h.run_id}/")
            h.ctx.cancel_task("C")

        helper = threading.Thread(target=cancel_once_running)
        helper.start()
        result = h.run(lambda runner: None)  # the runner on h.ctx, which the helper cancels
        helper.join()
        assert result.states()["C"] == "cancelled"
        assert not marked(f"{h.run_id}/"), "a process of the remote attempt outlived it"
        row = h.store.attempts(h.run_id, "C")[0]
        assert row["state"] == "interrupted" and row["post_commit"]


@pytest.mark.slow
def test_ctrl_c_stops_the_whole_remote_tree(repo: Path, ray_cluster: LocalCluster) -> None:
    wf = workflow(repo, _remote("I", GPU, LINGER), pools={"gpu": GPU})
    with start(wf) as h:
        runners: list[Runner] = []

        def interrupt_once_running() -> None:
            _wait_for_marked(f"{h.run_id}/")
            runners[0].interrupt()  # what the first Ctrl-C does

        helper = threading.Thread(target=interrupt_once_running)
        helper.start()
        result = h.run(runners.append)
        helper.join()
        assert result.state == "interrupted"
        assert not marked(f"{h.run_id}/"), "a process of the remote attempt outlived it"
        assert h.store.attempts(h.run_id, "I")[0]["post_commit"]  # its work came back


@pytest.mark.slow
def test_a_timeout_stops_the_whole_remote_tree(repo: Path, ray_cluster: LocalCluster) -> None:
    wf = workflow(repo, _remote("T", GPU, LINGER, timeout_s=3.0), pools={"gpu": GPU})
    with start(wf) as h:
        seen: list[int] = []
        watcher = threading.Thread(target=lambda: seen.extend(_wait_for_marked(f"{h.run_id}/")))
        watcher.start()
        result = h.drive()
        watcher.join()
        assert seen, "the remote command ran"
        assert result.states()["T"] == "failed"
        assert "timed out after 3s" in (result.tasks["T"]["error"] or "")
        assert not marked(f"{h.run_id}/"), "a process of the remote attempt outlived it"


def _pools_yaml(resources: str) -> str:
    return f"""
        version: 1
        name: t
        pools:
          remote: {{executor: ray, resources: {resources}}}
        tasks:
          A: {{run: "true", pool: remote}}
    """


def test_validate_only_checks_that_a_node_fits_each_pool(
    repo: Path, ray_cluster: LocalCluster
) -> None:
    write_workflow(repo, _pools_yaml("{gpuish: 1}"))
    ok = cli(repo, "run", "wf.yaml", "--validate-only")
    assert ok.returncode == 0, ok.stderr
    write_workflow(repo, _pools_yaml("{gpuish: 1, CPU: 4}"))
    bad = cli(repo, "run", "wf.yaml", "--validate-only")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "no node of the Ray cluster fits pool remote" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr


def test_validate_only_says_when_the_cluster_is_out_of_reach(
    repo: Path, ray_cluster: LocalCluster
) -> None:
    write_workflow(repo, _pools_yaml("{gpuish: 1}"))
    env = {"RAY_ADDRESS": "127.0.0.1:9"}  # what `ray.address: auto` joins: nothing there
    bad = cli(repo, "run", "wf.yaml", "--validate-only", env=env, timeout=120)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "cannot reach the Ray cluster" in bad.stdout + bad.stderr
