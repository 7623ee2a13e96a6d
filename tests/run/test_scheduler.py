"""The scheduler's rules on its own: no git, no store, no threads, no clock but ``now``.

Each test builds a workflow, asks the scheduler what to start, feeds it the transitions
the engine would, and checks what it offers next.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conductor.plan.planner import make_plan, remaining_path_hours
from conductor.plan.scopes import overlap
from conductor.run.scheduler import Scheduler
from conductor.spec.model import Group, Task, Validator, Workflow
from tests.testing.engine import task, workflow

NOW = 1_000_000.0
HOUR = 3600.0


def wf_of(*tasks: Task, groups: tuple[Group, ...] = ()) -> Workflow:
    return workflow(Path("/nowhere/repo"), *tasks, groups=groups)


def sched(wf: Workflow, **kw: Any) -> Scheduler:
    """A scheduler over the whole workflow, waves and path lengths from the real plan."""
    plan = make_plan(wf)
    kw.setdefault("overlap", overlap)
    return Scheduler(wf, plan.selected, {t: plan.wave_of(t) for t in plan.selected},
                     remaining_path_hours(plan), **kw)  # fmt: skip


def start(s: Scheduler, now: float = NOW) -> list[str]:
    """One dispatch round as the engine does it: take the batch, mark it running."""
    batch = s.next_batch(now)
    for t in batch:
        s.set(t, "running")
    return batch


def diamond() -> Workflow:
    # wave 0: A, B (B is slow); wave 1: C needs only A
    return wf_of(task("A"), task("B"), task("C", after=["A"]))


# ---------------------------------------------------------------- strategies


def test_waves_hold_the_next_wave_until_the_current_one_is_terminal() -> None:
    s = sched(diamond(), strategy="waves")
    assert start(s) == ["A", "B"]
    s.set("A", "succeeded")
    # C's own dependency is done, but B (same wave as A) still runs
    assert start(s) == []
    s.set("B", "failed")  # failed is terminal too: the wave is done
    assert start(s) == ["C"]


def test_eager_starts_a_task_as_soon_as_its_own_deps_succeeded() -> None:
    s = sched(diamond(), strategy="eager")
    assert start(s) == ["A", "B"]
    assert start(s) == []  # A still running
    s.set("A", "succeeded")
    assert start(s) == ["C"]  # B is still running and does not matter to C


def test_eager_never_starts_a_task_whose_dependency_failed() -> None:
    s = sched(diamond(), strategy="eager")
    start(s)
    s.set("A", "failed")
    s.set("B", "succeeded")
    assert s.next_batch(NOW) == []
    assert s.state["C"] == "pending"


# ---------------------------------------------------------------- ordering and capacity


def test_priority_first_then_longest_remaining_path_then_file_order() -> None:
    wf = wf_of(
        task("low", priority="low", estimate_s=10 * HOUR),
        task("short", estimate_s=1 * HOUR),
        task("tie1", estimate_s=1 * HOUR),
        task("long", estimate_s=1 * HOUR),
        task("tail", after=["long"], estimate_s=5 * HOUR),  # makes `long` the longer path
        task("urgent", priority="high"),
    )
    s = sched(wf)
    assert s.ready(NOW) == ["urgent", "long", "short", "tie1", "low"]


def test_concurrency_caps_a_batch_and_counts_running_tasks() -> None:
    s = sched(wf_of(*(task(f"T{i}") for i in range(5))), concurrency=2)
    assert start(s) == ["T0", "T1"]
    assert s.waiting == ["T2", "T3", "T4"]
    assert s.wait_reason("T2") == "all 2 slots busy"
    assert start(s) == []  # both slots still taken
    s.set("T0", "succeeded")
    assert start(s) == ["T2"]  # one slot freed, one task


def test_overlapping_touches_never_run_together() -> None:
    wf = wf_of(
        task("db", touches=("db/**",)),
        task("schema", touches=("db/schema.sql",)),
        task("web", touches=("web/**",)),
        task("free"),  # no scope declared: clashes with nothing
    )
    s = sched(wf, concurrency=8)
    assert start(s) == ["db", "web", "free"]
    assert s.waiting == ["schema"]
    assert s.wait_reason("schema") == "touches overlap with running db"
    s.set("db", "succeeded")
    assert start(s) == ["schema"]


def test_overlapping_touches_are_not_picked_together_in_one_batch() -> None:
    wf = wf_of(task("a", touches=("src/",)), task("b", touches=("src/x.py",)))
    s = sched(wf, concurrency=8)
    assert start(s) == ["a"]


def test_a_paused_scheduler_starts_nothing_but_still_lists_the_ready_tasks() -> None:
    s = sched(wf_of(task("A"), task("B")))
    s.paused = True
    assert s.next_batch(NOW) == []
    assert s.waiting == ["A", "B"]


# ---------------------------------------------------------------- failures


def test_block_downstream_blocks_every_transitive_dependent_and_nothing_else() -> None:
    wf = wf_of(
        task("A"),
        task("B", after=["A"]),
        task("C", after=["B"]),
        task("D", after=["A"]),
        task("E"),
        task("F", after=["E"]),
    )
    s = sched(wf, strategy="eager")
    start(s)
    s.set("A", "failed")
    assert sorted(s.block_downstream(["A"])) == ["B", "C", "D"]
    assert s.state == {"A": "failed", "B": "blocked", "C": "blocked", "D": "blocked",
                       "E": "running", "F": "pending"}  # fmt: skip
    s.set("E", "succeeded")
    assert start(s) == ["F"]
    s.set("F", "succeeded")
    assert s.finished()


# ---------------------------------------------------------------- group gates


def gated() -> Workflow:
    groups = (
        Group("G1", validate=(Validator(kind="run", run="make check"),)),
        Group("G2", depends_on=("G1",)),
    )
    return wf_of(
        task("a1", group="G1"),
        task("a2", group="G1"),
        task("b", group="G2"),
        task("c", after=["b"]),
        groups=groups,
    )


def test_a_group_depending_on_a_gated_group_waits_for_the_gate() -> None:
    s = sched(gated(), strategy="eager")
    assert start(s) == ["a1", "a2"]
    s.set("a1", "succeeded")
    assert s.gate_ready() == []  # not every member of G1 is done
    s.set("a2", "succeeded")
    assert s.gate_ready() == ["G1"]
    s.gates["G1"] = "running"
    assert start(s) == []  # b's dependencies succeeded, but the gate has not passed
    assert not s.finished()
    s.gates["G1"] = "passed"
    assert start(s) == ["b"]


def test_a_failed_gate_blocks_the_dependent_group_and_its_dependents() -> None:
    s = sched(gated(), strategy="eager")
    start(s)
    s.set("a1", "succeeded")
    s.set("a2", "succeeded")
    assert s.gate_failed("G1") == ["b", "c"]
    assert s.state["b"] == s.state["c"] == "blocked"
    assert s.gates["G1"] == "failed"
    assert s.finished()


# ---------------------------------------------------------------- time


def test_retry_backoff_delays_dispatch_and_sets_the_wakeup() -> None:
    s = sched(wf_of(task("A"), task("B")))
    start(s)
    s.set("A", "retrying")
    s.not_before["A"] = NOW + 10
    s.set("B", "succeeded")
    assert s.next_batch(NOW) == []
    assert s.next_wakeup(NOW) == NOW + 10
    assert s.next_batch(NOW + 10) == ["A"]


def test_a_held_agent_profile_delays_its_tasks_only() -> None:
    wf = wf_of(task("A"), task("B", agent="other"))
    s = sched(wf)
    s.held["fake"] = NOW + 30
    s.not_before["B"] = NOW + 5
    s.set("B", "retrying")
    assert s.next_batch(NOW) == []
    assert s.next_wakeup(NOW) == NOW + 5  # the nearest of both deadlines
    assert s.next_batch(NOW + 5) == ["B"]
    s.set("B", "running")
    assert s.next_wakeup(NOW + 5) == NOW + 30  # B's deadline no longer counts once it runs
    assert s.next_batch(NOW + 30) == ["A"]
    assert s.next_wakeup(NOW + 30) is None


def test_cancel_pending_cancels_waiting_tasks_and_leaves_running_ones() -> None:
    s = sched(wf_of(task("A"), task("B"), task("C", after=["A"])), concurrency=1)
    assert start(s) == ["A"]
    s.set("B", "retrying")
    assert s.cancel_pending() == ["B", "C"]
    assert s.state == {"A": "running", "B": "cancelled", "C": "cancelled"}
    assert not s.finished()
    s.set("A", "succeeded")
    assert s.finished()
    assert s.next_batch(NOW) == []


# ---------------------------------------------------------------- hand-built workflows


def test_depends_on_without_expanded_deps_is_still_honoured() -> None:
    # model.py promises plain dataclasses anyone can build; plan.graph expands
    # `depends_on` when `deps` is empty, so the plan has two waves here
    wf = Workflow(
        path=Path("/nowhere/wf.yaml"),
        name="t",
        tasks={"A": Task(id="A", prompt="a"), "B": Task(id="B", prompt="b", depends_on=("A",))},
    )
    s = sched(wf, strategy="eager")
    assert start(s) == ["A"]


def test_the_helper_workflow_expands_deps_like_spec_does() -> None:
    # guards the helper the engine tests rely on: without expansion they would test nothing
    wf = gated()
    assert wf.tasks["b"].deps == ("a1", "a2")
    assert wf.tasks["c"].deps == ("b",)
