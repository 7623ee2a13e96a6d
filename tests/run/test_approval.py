"""Approval before merge in the engine: held tasks, decisions from another store handle.

Each test drives a real run (real git, real store, agents faked) through
``conductor.run.start.drive``. The reviewer is a sink that, when a task comes to await
approval, decides through a second ``Store`` on the same file with the functions the CLI
calls (``conductor.ops.approve``): exactly what another process does. The runner sees the
decision on its heartbeat, as it sees a `cancel --task`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from conductor.exec.base import Request
from conductor.exec.fake import Reply
from conductor.ops.approve import approve, reject
from conductor.ops.steer import cancel
from conductor.run import engine
from conductor.run.start import RunOptions, drive
from conductor.spec.model import Group, WorkspaceSpec
from conductor.state.records import EventRow, RunRow
from conductor.state.store import Store
from tests.testing.engine import (
    SETTINGS,
    EngineResult,
    Harness,
    start,
    task,
    task_of,
    workflow,
    writes,
)

Decide = Callable[[Store, RunRow, EventRow], None]


@pytest.fixture(autouse=True)
def _quick_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "HEARTBEAT_S", 0.05)  # decisions are polled on it


def drive_with(h: Harness, decide: Decide) -> EngineResult:
    """Drive the run; ``decide`` runs (on its own store handle) each time a task waits."""

    def reviewer(row: EventRow) -> None:
        if row["kind"] == "task_awaiting_approval":
            with Store(h.store.path) as other:
                run = other.run(row["run_id"])
                assert run is not None
                decide(other, run, row)

    def give_up() -> None:  # a decision never acted on must fail the test, not hang it
        with Store(h.store.path) as other:
            other.update_run(h.run_id, state="cancelling")

    watchdog = threading.Timer(60, give_up)
    watchdog.start()
    try:
        state, _code = drive(h.ws, h.store, h.run_id, [reviewer], h.environ, h.wf, h.plan,
                             settings=SETTINGS, executor=h.executor)  # fmt: skip
    finally:
        watchdog.cancel()
    return h.result(state)


def approver(seen: list[dict[str, object]] | None = None) -> Decide:
    def decide(store: Store, run: RunRow, row: EventRow) -> None:
        tid = str(row["task_id"])
        if seen is not None:
            seen.append({t["task_id"]: t["state"] for t in store.tasks(run["id"])})
        approve(store, run, tid)

    return decide


def test_a_held_task_waits_while_others_run_and_merges_once_approved(repo: Path) -> None:
    wf = workflow(repo, task("A", approve=True), task("B", after=["A"]), task("C"),
                  hooks={"task_awaiting_approval": ("sh", "-c", "cat > {task}.hook.json")})  # fmt: skip
    seen: list[dict[str, object]] = []
    with start(wf, writes({"A": {"a.txt": "a\n"}, "B": {"b.txt": "b\n"}})) as h:
        worktree = h.ctx.layout.attempt_worktree(h.run_id, "A", 1)
        result = drive_with(h, approver(seen))
    assert seen[0]["A"] == "awaiting_approval" and seen[0]["B"] == "pending"
    assert result.state == "succeeded"
    assert result.merges("A") == 1 and result.show(result.head or "", "a.txt") == "a"
    kinds = [k for k in result.kinds("A") if k.startswith(("task_", "merged"))]
    assert kinds[-4:] == ["task_awaiting_approval", "task_approved", "merged", "task_completed"]
    assert result.attempts["A"][0]["state"] == "succeeded"
    # B started only after A's merge: it builds on A's work
    first_b = next(e["id"] for e in result.events if e["kind"] == "task_started"
                   and e["task_id"] == "B")  # fmt: skip
    merged_a = next(e["id"] for e in result.events_of("merged") if e["task_id"] == "A")
    assert first_b > merged_a
    approved = result.events_of("task_approved")[0]["data"]
    assert not approved.get("auto")
    assert not worktree.exists()  # kept while waiting, retired once merged (keep on_failure)
    doc = json.loads((repo / "A.hook.json").read_text())
    assert doc["event"] == "task_awaiting_approval" and doc["state"] == "awaiting_approval"
    assert doc["task"] == "A" and doc["data"]["attempt"] == 1


def test_the_worktree_of_a_waiting_task_is_kept_for_its_reviewer(repo: Path) -> None:
    wf = workflow(repo, task("A", approve=True), workspace=WorkspaceSpec(keep="never"))
    found: list[bool] = []
    with start(wf, writes({"A": {"a.txt": "a\n"}})) as h:
        worktree = h.ctx.layout.attempt_worktree(h.run_id, "A", 1)

        def decide(store: Store, run: RunRow, row: EventRow) -> None:
            found.append((worktree / "a.txt").read_text() == "a\n")
            approve(store, run, "A")

        assert drive_with(h, decide).state == "succeeded"
    assert found == [True]
    assert not worktree.exists()  # decided: `keep: never` applies again


def feedback_agent(prompts: list[str]) -> Callable[[Request], Reply]:
    """Writes its attempt number into out.txt and keeps every instructions file it read."""

    def agent(request: Request) -> Reply | None:
        if task_of(request) is None:
            return None
        prompts.append(Path(request.argv[2]).read_text())
        return Reply(files={"out.txt": request.env["CONDUCTOR_ATTEMPT"] + "\n"})

    return agent


def test_a_reject_with_a_message_retries_with_it_as_reviewer_feedback(repo: Path) -> None:
    wf = workflow(repo, task("A", approve=True))  # retries: 0 — a rejection costs none
    prompts: list[str] = []

    def decide(store: Store, run: RunRow, row: EventRow) -> None:
        if row["data"]["attempt"] == 1:
            reject(store, run, "A", "Use tabs, not ``` spaces")
        else:
            approve(store, run, "A")

    with start(wf, feedback_agent(prompts)) as h:
        result = drive_with(h, decide)
    assert result.state == "succeeded"
    assert "Reviewer feedback" not in prompts[0]
    assert "## Reviewer feedback" in prompts[1] and "Use tabs, not ``` spaces" in prompts[1]
    assert [a["state"] for a in result.attempts["A"]] == ["failed", "succeeded"]
    assert result.attempts["A"][0]["error"] == "rejected: Use tabs, not ``` spaces"
    assert result.merges("A") == 1 and result.show(result.head or "", "out.txt") == "2"
    rejected = result.events_of("task_rejected")[0]["data"]
    assert rejected["message"] == "Use tabs, not ``` spaces" and rejected["retry"] is True


def test_a_reject_without_a_message_fails_the_task_and_blocks_its_dependents(
    repo: Path,
) -> None:
    wf = workflow(repo, task("A", approve=True, retries=3), task("B", after=["A"]))

    def decide(store: Store, run: RunRow, row: EventRow) -> None:
        reject(store, run, "A", None)

    with start(wf, writes({"A": {"a.txt": "a\n"}})) as h:
        result = drive_with(h, decide)
    assert result.state == "failed"
    assert result.states() == {"A": "failed", "B": "blocked"}
    assert len(result.agent_runs("A")) == 1  # no retry, whatever `retries` says
    assert result.merges("A") == 0
    assert result.tasks["A"]["error"] == "rejected by the reviewer"
    # the work is not lost: it stays committed on its attempt branch
    assert result.attempts["A"][0]["post_commit"]


def test_auto_approve_merges_without_waiting(repo: Path) -> None:
    wf = workflow(repo, task("A", approve=True), task("B", after=["A"]))
    with start(wf, options=RunOptions(auto_approve=True)) as h:
        result = drive_with(h, lambda *_: pytest.fail("nobody should be asked"))
    assert result.state == "succeeded" and result.merges("A") == 1
    assert result.kinds("A").count("task_awaiting_approval") == 0
    assert result.events_of("task_approved")[0]["data"]["auto"] is True


def test_approving_a_group_approves_each_of_its_waiting_tasks(repo: Path) -> None:
    g = Group(id="G", approve=True)
    wf = workflow(repo, task("A", group="G", approve=True), task("B", group="G", approve=True),
                  task("C", after=["A", "B"]), groups=[g])  # fmt: skip
    decided: list[list[str]] = []

    def decide(store: Store, run: RunRow, row: EventRow) -> None:
        waiting = store.tasks_in_state(run["id"], "awaiting_approval")
        if len(waiting) == 2:  # both held: one approval for the group
            decided.append(approve(store, run, "G").tasks)

    with start(wf) as h:
        result = drive_with(h, decide)
    assert decided == [["A", "B"]]
    assert result.state == "succeeded" and result.merges("A") == result.merges("B") == 1


def test_cancelling_a_waiting_task_cancels_it_and_blocks_its_dependents(repo: Path) -> None:
    wf = workflow(repo, task("A", approve=True), task("B", after=["A"]), task("C"))

    def decide(store: Store, run: RunRow, row: EventRow) -> None:
        cancel(store, run, "A", wait=False)

    with start(wf) as h:
        result = drive_with(h, decide)
    assert result.states() == {"A": "cancelled", "B": "blocked", "C": "succeeded"}
    assert result.attempts["A"][0]["state"] == "interrupted"
    assert result.merges("A") == 0


def test_a_restarted_runner_finds_the_task_waiting_and_merges_it_once(repo: Path) -> None:
    """Interrupted while A waits; approved while no runner is live; resumed: A's agent
    does not run again and its held commit is merged exactly once."""
    wf = workflow(repo, task("A", approve=True), task("B", after=["A"]))
    with start(wf, writes({"A": {"a.txt": "a\n"}})) as h:
        result = h.run(
            lambda runner: runner.ctx.emit.sinks.append(
                lambda row: runner.interrupt() if row["kind"] == "task_awaiting_approval" else None
            )
        )
        assert result.state == "interrupted"
        assert result.states() == {"A": "awaiting_approval", "B": "pending"}
        row = h.store.run(h.run_id)
        assert row is not None
        h.store.update_run(h.run_id, state="interrupted")  # as the runner's exit leaves it
        decision = approve(h.store, row, "A")  # no runner: recorded for the next one
        assert decision.live is False
        assert h.store.task(h.run_id, "A")["state"] == "approved"  # type: ignore[index]
        result = drive_with(h, lambda *_: pytest.fail("A was already decided"))
    assert result.state == "succeeded"
    assert len(result.agent_runs("A")) == 1
    assert result.merges("A") == 1 and result.show(result.head or "", "a.txt") == "a"
