"""The incremental scheduler decides exactly what the full-scan one did (issue 16).

``OldScheduler`` (tests/run/old_scheduler.py) is the scheduler as it was: every query a
scan over every task. Hypothesis draws workflows (random DAGs, priorities, estimates,
scopes, pools with few or no slots, fan-out caps, trigger rules, `when:`, a gated group,
two agent profiles), a strategy, a concurrency and a policy, then a run: the transitions
the engine would feed (successes, failures and what they block, retries with backoff,
usage-limit holds and fallbacks, approvals, cancels, gates passing and failing, pauses,
a stop). After each, both schedulers must agree on what settles, what is ready and in
which order, what starts, what is announced as queued and why, and every verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conductor.plan.planner import make_plan, remaining_path_hours
from conductor.plan.scopes import overlap
from conductor.run.policies import CostAwarePolicy, FifoPolicy, SchedulerView
from conductor.run.scheduler import Scheduler
from conductor.spec.model import TRIGGERS, Group, Pool, Task, Validator, Workflow
from tests.run.old_scheduler import OldScheduler
from tests.testing.engine import task, workflow

NOW = 1_000_000.0
POOLS = {"gpu": Pool("gpu", slots=1), "duo": Pool("duo", slots=2), "shut": Pool("shut", slots=0)}
GROUPS = (Group("G1", validate=(Validator(kind="run", run="make check"),)),
          Group("G2", depends_on=("G1",)))  # fmt: skip
TOUCHES = ((), ("a/**",), ("a/x.py",), ("a/*",), ("b/*",), ("a/x.py", "b/y"))


class Backwards:
    """A policy of one's own: file order reversed, and it forgets the first task."""

    def order(self, ready: Sequence[str], view: SchedulerView) -> list[str]:
        return sorted(ready, key=view.seq, reverse=True)[:-1]


POLICIES: dict[str, Any] = {"default": None, "fifo": FifoPolicy, "cost-aware": CostAwarePolicy,
                            "backwards": Backwards}  # fmt: skip


@st.composite
def workflows(draw: st.DrawFn) -> Workflow:
    n = draw(st.integers(2, 12))
    tasks: list[Task] = []
    later_group = False  # G2 tasks come after G1 tasks: deps point back, so no cycle
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        group = draw(st.sampled_from([None, "G2"] if later_group else [None, "G1", "G2"]))
        later_group = later_group or group == "G2"
        fan = draw(st.sampled_from([None, None, "fan"]))
        tasks.append(task(
            f"T{i}", after=[f"T{d}" for d in deps], group=group,
            priority=draw(st.sampled_from(["high", "normal", "normal", "low"])),
            estimate_s=draw(st.sampled_from([None, 60.0, 3600.0, 7200.0])),
            touches=draw(st.sampled_from(TOUCHES)),
            pool=draw(st.sampled_from(["local"] * 4 + ["gpu", "duo", "duo", "shut"])),
            trigger=draw(st.sampled_from(TRIGGERS)) if deps and draw(st.booleans())
            else "all_success",
            when=draw(st.sampled_from([(), (), ("skip",), ("keep",)])),
            agent=draw(st.sampled_from(["fake", "fake", "other"])),
            template=fan, max_parallel=draw(st.sampled_from([1, 2])) if fan else None,
        ))  # fmt: skip
    used = {t.group for t in tasks}
    groups = [g for g in GROUPS if g.id in used]
    return workflow(Path("/nowhere/repo"), *tasks, groups=groups, pools=POOLS)


@dataclass
class Pair:
    """The two schedulers, fed the same transitions, and what the engine keeps about them."""

    new: Scheduler
    old: OldScheduler
    now: float = NOW
    queued_new: set[str] = field(default_factory=set)  # the engine's `_queued`, per side
    queued_old: set[str] = field(default_factory=set)
    checked: set[str] = field(default_factory=set)  # `when:` evaluated (run/conditions.py)

    def both(self, name: str, *args: Any) -> Any:
        a, b = getattr(self.new, name)(*args), getattr(self.old, name)(*args)
        assert a == b, (name, args, a, b)
        return a

    def put(self, t: str, state: str) -> None:
        self.both("set", t, state)

    def settle(self) -> None:
        """What run/conditions.py does before each dispatch: trigger rules, then `when:`."""
        tasks = self.new.workflow.tasks
        while True:
            decided = self.both("settle")
            due = [t for t in self.new.take_when_due() if t not in self.checked
                   and self.new.state[t] == "pending" and self.new.verdict(t) == "run"]  # fmt: skip
            old = self.old
            want = [t for t in old.selected if tasks[t].when and t not in self.checked
                    and old.state[t] == "pending" and old.verdict(t) == "run"]  # fmt: skip
            assert due == want
            for t in due:
                self.checked.add(t)
                if tasks[t].when == ("skip",):
                    self.put(t, "skipped")
            if not decided and not due:
                return

    def dispatch(self) -> list[str]:
        self.settle()
        assert self.new.ready(self.now) == self.old.ready(self.now)
        batch = self.both("next_batch", self.now)
        assert self.new.waiting == self.old.waiting
        for t in batch:
            self.queued_new.discard(t)
            self.queued_old.discard(t)
            self.put(t, "running")
        told_old = [(i, t) for i, t in enumerate(self.old.waiting, 1) if t not in self.queued_old]
        told_new = [(i, t) for i, t in self.new.newly_queued() if t not in self.queued_new]
        assert told_new == told_old
        for _, t in told_new:
            self.queued_new.add(t)
            self.queued_old.add(t)
            if not self.new.paused:
                self.both("wait_reason", t)
        for g in self.both("gate_ready"):
            self.new.gates[g] = self.old.gates[g] = "running"
        self.agree()
        return batch

    def agree(self) -> None:
        new, old = self.new, self.old
        assert new.state == old.state
        assert new.gates == old.gates
        assert new.running() == old.running()
        assert new.finished() == old.finished()
        assert new._open_wave() == old._open_wave()
        assert new.next_wakeup(self.now) == old.next_wakeup(self.now)
        assert new.pool_busy() == old.pool_busy()
        for t in new.selected:
            assert new.verdict(t) == old.verdict(t), t


def build(wf: Workflow, strategy: str, concurrency: int, policy: str) -> Pair:
    plan = make_plan(wf)
    kw: dict[str, Any] = {"strategy": strategy, "concurrency": concurrency, "overlap": overlap}
    args = (wf, plan.selected, {t: plan.wave_of(t) for t in plan.selected},
            remaining_path_hours(plan))  # fmt: skip
    new, old = Scheduler(*args, **kw), OldScheduler(*args, **kw)
    if POLICIES[policy] is not None:  # set after construction, as the run's start does
        new.policy, old.policy = POLICIES[policy](), POLICIES[policy]()
    return Pair(new, old)


def step(p: Pair, action: tuple[str, int, int]) -> None:
    """One transition the engine could feed, applied to both."""
    kind, i, j = action
    new, old = p.new, p.old
    running = new.running()
    held = sorted(new.in_states(("awaiting_approval",)), key=new.seq)
    if kind == "end" and running:
        t = running[i % len(running)]
        how = ["succeeded", "succeeded", "failed", "retry", "hold", "fallback", "cancelled",
               "approval"][j % 8]  # fmt: skip
        if how in ("failed", "cancelled"):
            p.put(t, how)
            p.both("block_downstream", [t])
        elif how in ("retry", "hold", "fallback"):
            agent = new.agent_of[t]
            if how == "hold":
                new.held[agent] = old.held[agent] = max(new.held.get(agent, 0.0), p.now + 7)
            if how == "fallback":  # the engine hands the profile's waiting tasks over
                for u in new.selected:
                    if new.agent_of[u] == agent and new.state[u] != "succeeded":
                        new.agent_of[u] = old.agent_of[u] = "spare"
            p.put(t, "retrying")
            new.not_before[t] = old.not_before[t] = p.now + (5 if how == "retry" and j % 2 else 0)
        else:
            p.put(t, "awaiting_approval" if how == "approval" else how)
    elif kind == "approve" and held:
        p.put(held[i % len(held)], "merging")
    elif kind == "gate":
        busy = [g for g, s in new.gates.items() if s == "running"]
        if busy:
            g = busy[i % len(busy)]
            if j % 3:
                new.gates[g] = old.gates[g] = "passed"
            else:
                p.both("gate_failed", g)
    elif kind == "tick":
        p.now += (1, 5, 10)[j % 3]
    elif kind == "hold":  # a usage limit on a profile: its queued tasks wait, others pass
        agent = ("fake", "other")[j % 2]
        new.held[agent] = old.held[agent] = p.now + (3, 7, 15)[i % 3]
    elif kind == "pause":
        new.paused = old.paused = not new.paused
    elif kind == "quota":
        pool = ("local", "gpu", "duo")[j % 3]
        for s in (new, old):
            if pool in s.pool_paused:
                del s.pool_paused[pool]
            else:
                s.pool_paused[pool] = "quota of $1 reached"
    elif kind == "cancel":
        waiting = sorted(new.in_states(("pending", "retrying")), key=new.seq)
        if waiting:
            t = waiting[i % len(waiting)]
            p.put(t, "cancelled")
            p.both("block_downstream", [t])
    elif kind == "stop":
        p.both("cancel_pending")


ACTIONS = st.tuples(
    st.sampled_from(["end"] * 6 + ["approve", "gate", "gate", "tick", "tick", "hold", "pause",
                                   "quota", "cancel", "stop"]),
    st.integers(0, 20), st.integers(0, 20),
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    wf=workflows(),
    strategy=st.sampled_from(["waves", "eager"]),
    concurrency=st.integers(1, 4),
    policy=st.sampled_from(sorted(POLICIES)),
    actions=st.lists(ACTIONS, max_size=40),
)
def test_incremental_dispatch_matches_the_full_scan(
    wf: Workflow, strategy: str, concurrency: int, policy: str, actions: list[Any]
) -> None:
    p = build(wf, strategy, concurrency, policy)
    p.dispatch()
    for action in actions:
        step(p, action)
        p.dispatch()
    # then as the run goes on by itself: everything running ends well, time passes
    for _ in range(3 * len(wf.tasks) + 6):
        for t in p.new.running():
            p.put(t, "succeeded")
        for t in sorted(p.new.in_states(("awaiting_approval",)), key=p.new.seq):
            p.put(t, "succeeded")
        for g in [g for g, s in p.new.gates.items() if s == "running"]:
            p.new.gates[g] = p.old.gates[g] = "passed"
        p.now += 10
        p.new.paused = p.old.paused = False
        p.dispatch()


def test_a_resumed_run_starts_from_the_recorded_states() -> None:
    """States set before the first dispatch (what `resume` does) are counted like any."""
    wf = workflow(Path("/nowhere/repo"), task("A"), task("B", after=["A"]),
                  task("C", after=["B"]), task("D"))  # fmt: skip
    p = build(wf, "waves", 2, "default")
    for t, s in {"A": "succeeded", "B": "failed", "D": "pending"}.items():
        p.put(t, s)
    assert p.dispatch() == ["D"]
    assert p.new.state["C"] == "blocked"


def test_what_settles_settles_in_rounds_in_file_order() -> None:
    """T0 skipped by its condition skips T1 (one_failed: nothing failed), which skips T2
    and T3. The full scan settles T1, T2, T3 in one round, in that order."""
    wf = workflow(Path("/nowhere/repo"), task("T0", when=("skip",)),
                  task("T1", after=["T0"], trigger="one_failed"),
                  task("T2", after=["T1"], trigger="one_failed"),
                  task("T3", after=["T1"], trigger="one_failed"))  # fmt: skip
    p = build(wf, "eager", 2, "default")
    assert p.both("settle") == []  # the first look, at every task, settles nothing
    p.put("T0", "skipped")
    assert [t for t, _, _ in p.both("settle")] == ["T1", "T2", "T3"]


def test_a_queue_position_leaves_out_the_tasks_a_hold_keeps_waiting() -> None:
    """Queued tasks of a held profile are not waiting: a task queued after them is told
    its place among the tasks that are."""
    wf = workflow(Path("/nowhere/repo"), task("A", priority="high", agent="other"),
                  task("B", priority="high", agent="other"), task("C"), task("D", after=["A"]),
                  task("E", priority="low"))  # fmt: skip
    p = build(wf, "eager", 1, "default")
    assert p.dispatch() == ["A"]  # B, C, E queued
    p.new.held["other"] = p.old.held["other"] = p.now + 60  # B stays queued, held
    p.put("A", "succeeded")
    assert p.dispatch() == ["C"]  # D joins the queue: first of the waiting, after held B
    assert p.new.waiting == ["D", "E"]
