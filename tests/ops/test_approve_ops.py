"""`conductor.ops.approve` as plain functions: who may be decided, what a decision
records, and the patch `diff` shows — on a real store and repository, with a run whose
runner stopped while its tasks waited (as after a kill)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor.errors import UserError
from conductor.ops.approve import allow_auto_approve, approve, reject, task_patch
from conductor.spec.model import Group
from conductor.state.records import RunRow
from tests.testing.engine import Harness, start, task, workflow, writes
from tests.testing.repos import git


@pytest.fixture
def held(repo: Path) -> Iterator[Harness]:
    """A run stopped while A and B (group G) wait for approval; C waits for A."""
    wf = workflow(repo, task("A", group="G", approve=True), task("B", group="G", approve=True),
                  task("C", after=["A"]), groups=[Group(id="G", approve=True)])  # fmt: skip
    files = {"A": {"a.txt": "a\n"}, "B": {"b.txt": "b\n"}}
    with start(wf, writes(files)) as h:

        def stop_when_both_wait(row: object) -> None:
            if len(h.store.tasks_in_state(h.run_id, "awaiting_approval")) == 2:
                runner.interrupt()

        runner = h.runner()
        runner.ctx.emit.sinks.append(stop_when_both_wait)
        assert runner.run() == "interrupted"
        yield h


def run_of(h: Harness) -> RunRow:
    row = h.store.run(h.run_id)
    assert row is not None
    return row


def state(h: Harness, tid: str) -> str:
    row = h.store.task(h.run_id, tid)
    assert row is not None
    return row["state"]


def refused(call: object, *args: object) -> str:
    with pytest.raises(UserError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.render()


def test_a_decision_is_recorded_with_its_event_and_not_taken_twice(held: Harness) -> None:
    run = run_of(held)
    decision = reject(held.store, run, "A", "  more tests  ")
    assert decision.tasks == ["A"] and decision.live is False
    row = held.store.task(held.run_id, "A")
    assert row is not None and (row["state"], row["error"]) == ("rejected", "more tests")
    event = held.store.events(held.run_id, newest=True, limit=1)[0]
    assert event["kind"] == "task_rejected" and event["data"]["message"] == "more tests"
    text = refused(approve, held.store, run, "A")
    assert "task A is not awaiting approval (it is rejected)" in text
    assert "someone decided already" in text


def test_a_group_approves_its_waiting_tasks_and_only_those(held: Harness) -> None:
    run = run_of(held)
    assert approve(held.store, run, "G").tasks == ["A", "B"]
    assert state(held, "A") == state(held, "B") == "approved"
    kinds = [e["kind"] for e in held.store.events(held.run_id, newest=True, limit=2)]
    assert kinds == ["task_approved", "task_approved"]
    text = refused(approve, held.store, run, "G")
    assert "no task of group G is awaiting approval" in text


def test_refusals_name_what_is_wrong(held: Harness) -> None:
    run = run_of(held)
    assert "has no task or group `g2`" in refused(approve, held.store, run, "g2")
    assert "did you mean `G`?" in refused(approve, held.store, run, "g")
    assert "reject takes one task; `G` is a group" in refused(reject, held.store, run, "G", "x")
    assert "awaiting approval: A, B" in refused(reject, held.store, run, "G", "x")
    assert "task C is not awaiting approval (it is pending)" in refused(
        reject, held.store, run, "C", None)  # fmt: skip
    held.store.update_run(held.run_id, state="failed")
    assert "already ended (failed)" in refused(approve, held.store, run_of(held), "A")
    assert state(held, "A") == "awaiting_approval"  # a refusal changes nothing


def test_resume_with_auto_approve_is_remembered_by_the_run(held: Harness) -> None:
    allow_auto_approve(held.store, run_of(held))
    allow_auto_approve(held.store, run_of(held))  # idempotent
    options = json.loads(run_of(held)["options"])
    assert options["auto_approve"] is True and "concurrency" in options


def test_the_patch_of_a_held_task_leaves_out_what_others_merged(held: Harness) -> None:
    repo = held.ws.root
    git(repo, "update-ref", "refs/heads/conductor/t",  # someone merged more meanwhile
        git(repo, "commit-tree", git(repo, "rev-parse", "conductor/t^{tree}"), "-p",
            "conductor/t", "-m", "other work"))  # fmt: skip
    patch = task_patch(held.store, run_of(held), "A", None)
    assert "+++ b/a.txt" in patch.text and "b.txt" not in patch.text
    assert patch.what.startswith("A attempt 1 (awaiting_approval): ")
    git(repo, "branch", "-D", "conductor/t")  # gone: against where the attempt started
    assert "+++ b/a.txt" in task_patch(held.store, run_of(held), "A", 1).text
    assert "has no task `Q`" in refused(task_patch, held.store, run_of(held), "Q", None)
