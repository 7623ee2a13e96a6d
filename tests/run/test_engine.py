"""The engine on a real repository and store, with the agents faked (no processes).

Each test runs a small workflow through ``conductor.run.start.drive`` with a
``FakeExecutor`` standing in for agents, checks and gates, then looks at what a user
would: task states in the store, merges on the integration branch, the events, and what
each attempt left on its own branch.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from conductor.exec.base import Request
from conductor.exec.fake import Reply
from conductor.run.start import RunOptions
from conductor.spec.model import Group, Validator, WorkspaceSpec
from tests.testing.engine import (
    BRANCH,
    EngineResult,
    run_workflow,
    start,
    task,
    task_of,
    workflow,
    writes,
)
from tests.testing.repos import git


def check(cmd: str) -> Validator:
    return Validator(kind="run", run=cmd)


def trailer(repo: Path, rev: str, key: str) -> str:
    return git(repo, "log", "-1", f"--format=%(trailers:key={key},valueonly)", rev)


def attempt_branch(run_id: str, task_id: str, n: int) -> str:
    return f"{BRANCH}.attempts/{run_id}/{task_id}/{n}"


# ---------------------------------------------------------------- a whole DAG


def test_a_dag_runs_every_task_and_merges_each_exactly_once(repo: Path) -> None:
    main_before = git(repo, "rev-parse", "main")
    seen_by: dict[str, bool] = {}

    def agent(req: Request) -> Reply:
        tid = task_of(req)
        assert tid is not None
        seen_by[tid] = (req.cwd / "a.txt").exists()
        return Reply(files={f"{tid.lower()}.txt": f"{tid} was here\n"})

    wf = workflow(repo, task("A"), task("B", after=["A"]), task("C", after=["A"]))
    r = run_workflow(wf, agent)

    assert r.state == "succeeded"
    assert r.states() == {"A": "succeeded", "B": "succeeded", "C": "succeeded"}
    assert [r.merges(t) for t in "ABC"] == [1, 1, 1]
    for t in "ABC":
        assert r.show(BRANCH, f"{t.lower()}.txt") == f"{t} was here"
    # the store records the very merges that are on the branch, one per task
    on_branch = git(repo, "log", "--first-parent", "--merges", "--format=%H", BRANCH).split()
    assert sorted(r.tasks[t]["merge_commit"] for t in "ABC") == sorted(on_branch)
    # B and C start from the integration head that already holds A's merge
    assert seen_by == {"A": False, "B": True, "C": True}
    assert git(repo, "rev-parse", "main") == main_before  # the user's branch never moves


def test_events_are_recorded_in_order_for_each_task(repo: Path) -> None:
    wf = workflow(
        repo,
        task("A", validate=(Validator(kind="exists", paths=("a.txt",)),)),
        task("B", after=["A"]),
    )
    r = run_workflow(wf, writes({"A": {"a.txt": "a\n"}, "B": {"b.txt": "b\n"}}))

    def steps(t: str) -> list[str]:  # its events, with the phases of its attempt named
        return [e["data"]["phase"] if e["kind"] == "task_phase" else e["kind"]
                for e in r.events if e["task_id"] == t]  # fmt: skip

    assert steps("A") == ["task_started", "agent", "validate", "validation_passed", "merge",
                          "merged", "task_completed"]  # fmt: skip
    assert steps("B") == ["task_started", "agent", "validate", "merge", "merged", "task_completed"]
    kinds = r.kinds()
    assert kinds[0] == "run_started"
    # B starts only once A is recorded as completed; the run ends after both
    assert kinds.index("task_completed") < [e["task_id"] for e in r.events].index("B")
    assert kinds.index("run_finished") > max(i for i, k in enumerate(kinds) if k == "merged")
    [finished] = r.events_of("run_finished")
    assert finished["data"]["state"] == "succeeded"
    assert finished["data"]["counts"] == {"succeeded": 2}
    [merged_a] = [e for e in r.events_of("merged") if e["task_id"] == "A"]
    assert r.tasks["A"]["merge_commit"].startswith(merged_a["data"]["commit"])


# ---------------------------------------------------------------- failures and retries


def test_a_failing_task_is_retried_then_fails_and_blocks_only_its_dependents(
    repo: Path,
) -> None:
    wf = workflow(
        repo,
        task("A", retries=1),
        task("B", after=["A"]),
        task("C"),
        task("D", after=["C"]),
    )
    r = run_workflow(wf, writes({"C": {"c.txt": "c\n"}, "D": {"d.txt": "d\n"}}, fail=["A"]))

    assert r.state == "failed"
    assert r.states() == {"A": "failed", "B": "blocked", "C": "succeeded", "D": "succeeded"}
    assert r.tasks["A"]["attempts"] == 2
    assert [a["state"] for a in r.attempts["A"]] == ["failed", "failed"]
    assert "agent exited 1" in r.tasks["A"]["error"]
    assert r.tasks["B"]["error"] == "blocked by A"
    assert len(r.agent_runs("A")) == 2
    assert r.agent_runs("B") == []
    assert r.kinds("A").count("task_retrying") == 1
    assert r.kinds("A").count("task_failed") == 1
    assert r.kinds("B") == ["task_blocked"]
    assert r.merges("A") == 0 and r.merges("B") == 0
    assert r.merges("C") == 1 and r.merges("D") == 1


def test_a_task_that_fails_once_then_succeeds_ends_succeeded_with_two_attempts(
    repo: Path,
) -> None:
    prompts: list[str] = []

    def flaky(req: Request) -> Reply:
        prompts.append(Path(req.argv[2]).read_text())
        if req.env["CONDUCTOR_ATTEMPT"] == "1":
            return Reply(exit_code=1, output=["boom: the widget is missing"])
        return Reply(files={"widget.txt": "widget\n"})

    r = run_workflow(workflow(repo, task("A", retries=1)), flaky)

    assert r.state == "succeeded"
    assert r.tasks["A"]["state"] == "succeeded"
    assert r.tasks["A"]["attempts"] == 2
    assert [a["state"] for a in r.attempts["A"]] == ["failed", "succeeded"]
    assert r.merges("A") == 1
    assert r.show(BRANCH, "widget.txt") == "widget"
    # the retry is told what went wrong, in the agent's own words
    assert "boom: the widget is missing" not in prompts[0]
    assert "boom: the widget is missing" in prompts[1]


@pytest.mark.parametrize("fail_fast", [True, False])
def test_fail_fast_stops_dispatch_after_the_first_failure(repo: Path, fail_fast: bool) -> None:
    # one slot and A first: B and C are still waiting when A fails
    wf = workflow(repo, task("A", priority="high"), task("B"), task("C"), concurrency=1)
    r = run_workflow(wf, writes({}, fail=["A"]), options=RunOptions(fail_fast=fail_fast))

    assert r.state == "failed"
    if fail_fast:
        assert r.states() == {"A": "failed", "B": "cancelled", "C": "cancelled"}
        assert r.tasks["B"]["error"] == "fail-fast: A failed"
        assert [task_of(q) for q in r.agent_runs()] == ["A"]
    else:  # the control: without the flag, independent work goes on
        assert r.states() == {"A": "failed", "B": "succeeded", "C": "succeeded"}
        assert [task_of(q) for q in r.agent_runs()] == ["A", "B", "C"]


def test_a_failed_attempt_is_committed_on_its_attempt_branch(repo: Path) -> None:
    wf = workflow(repo, task("A"))
    r = run_workflow(wf, writes({"A": {"half/done.txt": "half of it\n"}}, fail=["A"]))

    assert r.tasks["A"]["state"] == "failed"
    [att] = r.attempts["A"]
    branch = attempt_branch(r.run_id, "A", 1)
    assert att["branch"] == branch
    assert att["post_commit"] == git(repo, "rev-parse", branch)
    assert r.show(branch, "half/done.txt") == "half of it"  # no work lost
    assert trailer(repo, branch, "Conductor-Status") == "exit 1"
    assert trailer(repo, branch, "Conductor-Task") == "A"
    # kept for inspection (keep: on_failure), and never merged
    assert Path(att["worktree"], "half/done.txt").is_file()
    assert git(repo, "ls-tree", "--name-only", BRANCH) == "README.md"


# ---------------------------------------------------------------- checks


def test_a_run_check_goes_through_the_executor_in_the_attempt_worktree(repo: Path) -> None:
    wf = workflow(repo, task("A", validate=(check("make check"),)))
    r = run_workflow(wf, writes({"A": {"a.txt": "a\n"}}))

    assert r.state == "succeeded"
    agent, chk = r.requests
    assert task_of(agent) == "A"
    assert list(chk.argv) == ["bash", "-c", "make check"]
    assert chk.cwd == Path(r.attempts["A"][0]["worktree"]) == agent.cwd
    assert chk.env["CONDUCTOR_TASK_ID"] == "A"
    assert r.kinds("A").count("validation_passed") == 1


def test_a_failing_run_check_fails_the_attempt_and_names_the_check(repo: Path) -> None:
    def handler(req: Request) -> Reply:
        if task_of(req) == "A":
            return Reply(files={"a.txt": "a\n"})
        return Reply(exit_code=2, output=["3 tests failed"])  # the check

    wf = workflow(repo, task("A", validate=(check("make check"),)))
    r = run_workflow(wf, handler)

    assert r.state == "failed"
    assert r.tasks["A"]["state"] == "failed"
    assert r.tasks["A"]["error"] == "validation failed: run: make check"
    [failed] = [e for e in r.events_of("validation_failed") if e["task_id"] == "A"]
    assert failed["data"]["check"] == "run: make check"
    [task_failed] = r.events_of("task_failed")
    assert "3 tests failed" in task_failed["data"]["output"]
    assert r.merges("A") == 0
    # the work that failed its check is still on the attempt branch
    assert r.show(attempt_branch(r.run_id, "A", 1), "a.txt") == "a"


def test_missing_declared_outputs_fail_the_task(repo: Path) -> None:
    wf = workflow(
        repo,
        task("lazy", outputs=("out/report.md",)),
        task("done", outputs=("out/summary.md",)),
    )
    files = {"lazy": {"notes.txt": "n\n"}, "done": {"out/summary.md": "# ok\n"}}
    r = run_workflow(wf, writes(files))

    assert r.states() == {"lazy": "failed", "done": "succeeded"}
    assert r.tasks["lazy"]["error"] == "validation failed: outputs"
    [failed] = r.events_of("task_failed")
    assert "missing output(s): out/report.md" in failed["data"]["output"]
    assert r.merges("lazy") == 0 and r.merges("done") == 1


def test_a_failing_setup_command_fails_the_attempt_before_the_agent_starts(
    repo: Path,
) -> None:
    def handler(req: Request) -> Reply:
        return Reply(exit_code=1 if list(req.argv) == ["bash", "-c", "npm ci"] else 0)

    wf = workflow(repo, task("A"), workspace=WorkspaceSpec(setup=("npm ci",)))
    r = run_workflow(wf, handler)

    assert r.tasks["A"]["state"] == "failed"
    assert r.tasks["A"]["error"] == "workspace setup `npm ci` failed"
    assert [list(q.argv) for q in r.requests] == [["bash", "-c", "npm ci"]]
    assert r.requests[0].cwd == Path(r.attempts["A"][0]["worktree"])


# ---------------------------------------------------------------- group gates


def gate_groups() -> tuple[Group, ...]:
    return (
        Group("G1", validate=(check("make lint"),)),
        Group("G2", depends_on=("G1",)),
    )


@pytest.mark.parametrize("gate_ok", [True, False])
def test_a_group_gate_decides_whether_the_dependent_group_runs(
    repo: Path, gate_ok: bool
) -> None:
    gate_saw: list[bool] = []

    def handler(req: Request) -> Reply:
        if "CONDUCTOR_GROUP" in req.env:  # the gate, on a checkout of the integration branch
            gate_saw.append((req.cwd / "a.txt").is_file())
            return Reply(exit_code=0 if gate_ok else 1, output=["lint: 3 errors"])
        tid = task_of(req)
        return Reply(files={f"{tid}.txt": "x\n"})

    wf = workflow(repo, task("a", group="G1"), task("b", group="G2"), task("c", after=["b"]),
                  groups=gate_groups())  # fmt: skip
    r = run_workflow(wf, handler)

    assert gate_saw == [True]  # the gate checked G1's merged work
    [gate_req] = [q for q in r.requests if "CONDUCTOR_GROUP" in q.env]
    assert list(gate_req.argv) == ["bash", "-c", "make lint"]
    assert r.tasks["a"]["state"] == "succeeded"
    kinds = r.kinds()
    if gate_ok:
        assert r.state == "succeeded"
        assert r.states() == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
        b_started = next(i for i, e in enumerate(r.events)
                         if e["task_id"] == "b" and e["kind"] == "task_started")  # fmt: skip
        assert kinds.index("gate_passed") < b_started
    else:
        assert r.state == "failed"
        assert r.states() == {"a": "succeeded", "b": "blocked", "c": "blocked"}
        assert r.tasks["b"]["error"] == "blocked by gate G1"
        [failed] = r.events_of("gate_failed")
        assert failed["data"]["group"] == "G1"
        assert "lint: 3 errors" in failed["data"]["output"]
        assert r.agent_runs("b") == [] and r.agent_runs("c") == []


# ---------------------------------------------------------------- conflicts


@pytest.mark.parametrize("on_conflict", ["retry", "fail"])
def test_a_merge_conflict_is_retried_on_the_new_head_or_fails(
    repo: Path, on_conflict: str
) -> None:
    # both first attempts start from the same head, whoever merges second conflicts
    both_started = threading.Barrier(2, timeout=10)
    prompts: dict[tuple[str, str], str] = {}

    def handler(req: Request) -> Reply:
        tid, n = task_of(req), req.env["CONDUCTOR_ATTEMPT"]
        assert tid is not None
        prompts[tid, n] = Path(req.argv[2]).read_text()
        if n == "1":
            both_started.wait()
        return Reply(files={"shared.txt": f"{tid} wrote this\n"})

    wf = workflow(repo, task("X", on_conflict=on_conflict), task("Y", on_conflict=on_conflict))
    r = run_workflow(wf, handler)

    [conflict] = r.events_of("conflict")
    loser = conflict["task_id"]
    winner = "Y" if loser == "X" else "X"
    assert conflict["data"]["paths"] == ["shared.txt"]
    assert r.tasks[winner]["state"] == "succeeded" and r.merges(winner) == 1
    if on_conflict == "retry":
        assert r.state == "succeeded"
        assert r.tasks[loser]["attempts"] == 2 and r.merges(loser) == 1
        assert "shared.txt" in prompts[loser, "2"]  # told what collided
        # the retry built on the winner's merge, so its version is the final one
        assert r.show(BRANCH, "shared.txt") == f"{loser} wrote this"
    else:
        assert r.state == "failed"
        assert r.tasks[loser]["state"] == "failed"
        assert r.tasks[loser]["attempts"] == 1 and r.merges(loser) == 0
        assert r.tasks[loser]["error"] == "merge conflict in shared.txt"
        assert r.show(BRANCH, "shared.txt") == f"{winner} wrote this"


# ---------------------------------------------------------------- cancel


def cancelled_run(repo: Path) -> EngineResult:
    """A run in which `conductor cancel RUN --task A` came before A started: the runner
    finds A `cancelling` in the store at its first heartbeat."""
    wf = workflow(repo, task("A"), task("B", after=["A"]), task("C"))
    with start(wf, writes({"C": {"c.txt": "c\n"}})) as h:
        return h.run(lambda runner: runner.ctx.store.update_task(
            runner.ctx.run_id, "A", state="cancelling"))  # fmt: skip


def test_cancelling_a_waiting_task_cancels_it_and_blocks_its_dependents(repo: Path) -> None:
    r = cancelled_run(repo)

    assert r.states() == {"A": "cancelled", "B": "blocked", "C": "succeeded"}
    assert r.tasks["B"]["error"] == "blocked by A"
    assert [task_of(q) for q in r.agent_runs()] == ["C"]


def test_a_cancelled_task_is_announced_once(repo: Path) -> None:
    r = cancelled_run(repo)

    assert r.kinds("A") == ["task_cancelled"]
    assert r.kinds("B") == ["task_blocked"]
