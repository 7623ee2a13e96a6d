"""The scheduler as it was before issue 16: every query a scan over every task.

Kept, unchanged but for this docstring, as the reference the incremental scheduler
(conductor/run/scheduler.py) is checked against in test_scheduler_incremental.py: the
same transitions must give the same batches, queue, verdicts and settlements.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from conductor.plan.graph import group_members, task_deps
from conductor.run.policies import DefaultPolicy, Policy, default_key
from conductor.run.triggers import BAD, OK, Verdict, skip_reason
from conductor.spec.model import Pool, Workflow
from conductor.state.states import TASK_ACTIVE, TASK_TERMINAL, TASK_WAITING


def rule_verdict(rule: str, states: Sequence[str]) -> Verdict:
    """triggers.rule_verdict as it was (it is now counts_verdict over counted states)."""
    settled = all(s in OK or s in BAD for s in states)
    bad = any(s in BAD for s in states)
    if rule == "all_done":
        return "run" if settled else "wait"
    if rule == "one_failed":
        return "run" if bad else "skip" if settled else "wait"
    if rule == "one_success":
        if not states or "succeeded" in states:
            return "run"
        return "wait" if not settled else "block" if bad else "skip"
    return "block" if bad else "run" if settled else "wait"


@dataclass
class OldScheduler:
    workflow: Workflow
    selected: Sequence[str]
    wave: Mapping[str, int]
    remaining_hours: Mapping[str, float]
    strategy: str = "waves"
    concurrency: int = 4
    overlap: Callable[[Sequence[str], Sequence[str]], bool] = lambda a, b: False
    state: dict[str, str] = field(default_factory=dict)
    gates: dict[str, str] = field(default_factory=dict)  # group -> pending|running|passed|failed
    not_before: dict[str, float] = field(default_factory=dict)  # retry backoff deadlines
    paused: bool = False
    waiting: list[str] = field(default_factory=list)  # ready but not started, best first
    held: dict[str, float] = field(default_factory=dict)  # agent profile -> paused until
    agent_of: dict[str, str] = field(default_factory=dict)  # task -> profile it will use
    policy: Policy = field(default_factory=DefaultPolicy)
    known_reset: set[str] = field(default_factory=set)  # held agents whose reset was stated
    # pools (run/quotas.py keeps these): spend reported, paused for a spent quota (why),
    # held by a usage limit (until; `pool_known`: the agent stated it), down (why no
    # worker can take its tasks: an executor says so in RunContext.pools_down)
    pool_spent: dict[str, float] = field(default_factory=dict)
    pool_paused: dict[str, str] = field(default_factory=dict)
    pool_held: dict[str, float] = field(default_factory=dict)
    pool_known: set[str] = field(default_factory=set)
    pool_down: dict[str, str] = field(default_factory=dict)
    agent_cost: dict[str, tuple[float, int]] = field(default_factory=dict)  # USD, attempts
    alarm: float | None = None  # wake the loop then (the deadlock grace running out)

    def __post_init__(self) -> None:
        chosen = set(self.selected)
        self._seq = {t: i for i, t in enumerate(self.selected)}
        wf, members = self.workflow, group_members(self.workflow)
        self._deps = {t: [d for d in task_deps(wf, wf.tasks[t], members) if d in chosen]
                      for t in chosen}  # fmt: skip
        self._dependents: dict[str, list[str]] = {t: [] for t in chosen}
        for t, deps in self._deps.items():
            for d in deps:
                self._dependents[d].append(t)
        for t in self.selected:
            self.state.setdefault(t, "pending")
            self.agent_of.setdefault(t, self.workflow.tasks[t].agent)
        for g, group in self.workflow.groups.items():
            if group.validate and any(self.workflow.tasks[t].group == g for t in chosen):
                self.gates.setdefault(g, "pending")
        self._members = {g: [t for t in self.selected if self.workflow.tasks[t].group == g]
                         for g in self.gates}  # fmt: skip
        self._ready_at: dict[str, int] = {}  # task -> when it joined the ready queue
        self._tick = itertools.count()

    # -- queries ------------------------------------------------------------

    def gates_needed(self, task_id: str) -> list[str]:
        """Gated groups this task waits for: those its own group depends on."""
        group = self.workflow.tasks[task_id].group
        if group is None or group not in self.workflow.groups:
            return []
        return [g for g in self.workflow.groups[group].depends_on if g in self.gates]

    def running(self) -> list[str]:
        return [t for t in self.selected if self.state[t] in TASK_ACTIVE]

    def finished(self) -> bool:
        gates_busy = any(s == "running" for s in self.gates.values())
        return not gates_busy and all(self.state[t] in TASK_TERMINAL for t in self.selected)

    def _open_wave(self) -> int:
        """The highest wave allowed to start: with `waves`, the lowest unfinished one."""
        if self.strategy != "waves":
            return 1 << 30
        unfinished = [self.wave[t] for t in self.selected if self.state[t] not in TASK_TERMINAL]
        return min(unfinished, default=0)

    def deps_of(self, task_id: str) -> list[str]:
        """The selected tasks it depends on."""
        return self._deps[task_id]

    def _deps_met(self, task_id: str) -> bool:
        return self.verdict(task_id) == "run"

    def verdict(self, task_id: str) -> Verdict:
        """What the task's trigger rule says, given its dependencies and gates (triggers.py)."""
        return rule_verdict(self.workflow.tasks[task_id].trigger, self._inputs(task_id))

    def _inputs(self, task_id: str) -> list[str]:
        """The states of what the task waits for: its dependencies, then its gates."""
        gates = [self._gate_state(g) for g in self.gates_needed(task_id)]
        return [*(self.state[d] for d in self._deps[task_id]), *gates]

    def _gate_state(self, group: str) -> str:
        """A gate as a dependency: passed succeeded, failed failed, and one that will never
        run (a member of its group settled without succeeding) blocked."""
        st = self.gates[group]
        if st in ("passed", "failed"):
            return "succeeded" if st == "passed" else "failed"
        members = self._members[group]  # stops at the first member still to settle
        if all(self.state[t] in TASK_TERMINAL for t in members) and not all(
            self.state[t] in OK for t in members
        ):
            return "blocked"
        return "pending"

    def settle(self) -> list[tuple[str, str, str]]:
        """Waiting tasks their trigger rule will never run, now skipped or blocked, as
        (task, state, why); in rounds, since one task settled may settle the next."""
        out: list[tuple[str, str, str]] = []
        changed = True
        while changed:
            changed = False
            for t in self.selected:
                if self.state[t] != "pending":
                    continue
                v = self.verdict(t)
                if v in ("skip", "block"):
                    rule = self.workflow.tasks[t].trigger
                    why = skip_reason(rule) if v == "skip" else self._bad_input(t)
                    self.state[t] = "skipped" if v == "skip" else "blocked"
                    out.append((t, self.state[t], why))
                    changed = True
        return out

    def _bad_input(self, task_id: str) -> str:
        """The first dependency (or gate) that did not succeed: what blocks the task."""
        deps = self._deps[task_id]
        bad = next((d for d in deps if self.state[d] in BAD), None)
        if bad is not None:
            return bad
        return next((f"gate {g}" for g in self.gates_needed(task_id)
                     if self._gate_state(g) in BAD), "a dependency")  # fmt: skip

    def ready(self, now: float) -> list[str]:
        """Tasks whose dependencies and gates are satisfied, best first."""
        top = self._open_wave()
        found = [
            t for t in self.selected
            if self.state[t] in TASK_WAITING
            and self.wave[t] <= top
            and self.not_before.get(t, 0.0) <= now
            and self.held.get(self.agent_of[t], 0.0) <= now
            and self._deps_met(t)
        ]  # fmt: skip
        for t in found:
            self._ready_at.setdefault(t, next(self._tick))
        return self._ordered(found)

    def _ordered(self, found: list[str]) -> list[str]:
        """The policy's order, kept honest: a user's policy that drops or invents ids
        cannot lose a task (left-outs follow in the default order) or start a stranger."""
        ranked = list(dict.fromkeys(t for t in self.policy.order(list(found), self) if t in found))
        rest = sorted(set(found) - set(ranked), key=lambda t: default_key(t, self))
        return ranked + rest

    def next_batch(self, now: float) -> list[str]:
        """What to start now: ready tasks within capacity whose scopes are free."""
        self.waiting = ready = self.ready(now)
        if self.paused:
            return []
        busy = self.running()
        picked: list[str] = []
        for t in ready:
            if len(busy) + len(picked) >= self.concurrency:
                break
            others = (*busy, *picked)
            if self.pool_stop(t) is not None or self._pool_full(t, others):
                continue
            if any(self._clash(t, other) for other in others):
                continue
            if self._capped(t, others) is not None:
                continue
            picked.append(t)
        self.waiting = [t for t in ready if t not in picked]
        return picked

    def wait_reason(self, task_id: str) -> str:
        stop = self.pool_stop(task_id)
        if stop is not None:
            return stop
        busy = self.running()
        clash = next((o for o in busy if self._clash(task_id, o)), None)
        if clash is not None:
            return f"touches overlap with running {clash}"
        template = self._capped(task_id, busy)
        if template is not None:
            cap = self.workflow.tasks[task_id].max_parallel
            return f"max_parallel: {cap} of {template} already running"
        pool = self.pool_of(task_id)
        if pool.cap(self.concurrency) < self.concurrency and self._pool_full(task_id, busy):
            return f"all {pool.cap(self.concurrency)} slots of pool {pool.name} busy"
        return f"all {self.concurrency} slots busy"

    # -- pools ----------------------------------------------------------------

    def pool_of(self, task_id: str) -> Pool:
        return self.workflow.pool(self.workflow.tasks[task_id].pool)

    def pool_stop(self, task_id: str) -> str | None:
        """Why the task's pool starts nothing now (down, closed, paused), or None."""
        pool = self.pool_of(task_id)
        name = pool.name
        if name in self.pool_down:
            return f"pool {name}: {self.pool_down[name]}"
        if pool.slots == 0:
            return f"pool {name} has no slots"
        if name in self.pool_paused:
            return f"pool {name} paused: {self.pool_paused[name]}"
        if name in self.pool_held:
            until = time.strftime("%H:%M:%S", time.localtime(self.pool_held[name]))
            return f"pool {name} paused by a usage limit until {until}"
        return None

    def _pool_full(self, task_id: str, others: Sequence[str]) -> bool:
        pool = self.pool_of(task_id)
        same = sum(1 for o in others if self.workflow.tasks[o].pool == pool.name)
        return same >= pool.cap(self.concurrency)

    def pool_busy(self) -> dict[str, int]:
        """Pool -> tasks of it running now."""
        out: dict[str, int] = {}
        for t in self.running():
            out[self.workflow.tasks[t].pool] = out.get(self.workflow.tasks[t].pool, 0) + 1
        return out

    # -- what a policy reads (run/policies.py SchedulerView) ------------------

    def path_hours(self, task_id: str) -> float:
        return self.remaining_hours.get(task_id, 0.0)

    def seq(self, task_id: str) -> int:
        return self._seq[task_id]

    def ready_since(self, task_id: str) -> int:
        return self._ready_at.get(task_id, 1 << 60)

    def quota_left(self, pool: str) -> float | None:
        usd = self.workflow.pool(pool).usd
        return None if usd is None else max(0.0, 1.0 - self.pool_spent.get(pool, 0.0) / usd)

    def estimated_cost(self, task_id: str) -> float | None:
        spent, n = self.agent_cost.get(self.agent_of[task_id], (0.0, 0))
        if n:
            return spent / n
        total = sum(c for c, _ in self.agent_cost.values())
        count = sum(k for _, k in self.agent_cost.values())
        return total / count if count else None

    def _capped(self, task_id: str, others: Sequence[str]) -> str | None:
        """The fan-out task whose `max_parallel` ``others`` already fill, or None."""
        task = self.workflow.tasks[task_id]
        if task.template is None or task.max_parallel is None:
            return None
        tasks = self.workflow.tasks
        same = sum(1 for o in others if tasks[o].template == task.template)
        return task.template if same >= task.max_parallel else None

    def _clash(self, a: str, b: str) -> bool:
        ta, tb = self.workflow.tasks[a].touches, self.workflow.tasks[b].touches
        return bool(ta and tb and self.overlap(ta, tb))

    def next_wakeup(self, now: float) -> float | None:
        waits = [d for t, d in self.not_before.items() if self.state[t] == "retrying" and d > now]
        waits += [d for d in (*self.held.values(), *self.pool_held.values()) if d > now]
        waits += [self.alarm] if self.alarm is not None and self.alarm > now else []
        return min(waits) if waits else None

    # -- transitions --------------------------------------------------------

    def set(self, task_id: str, state: str) -> None:
        self.state[task_id] = state
        if state not in TASK_WAITING:  # started or settled: it leaves the ready queue
            self._ready_at.pop(task_id, None)

    def block_downstream(self, roots: Iterable[str]) -> list[str]:
        """Mark every not-yet-started task downstream of ``roots`` blocked."""
        blocked: list[str] = []
        stack = [d for r in roots for d in self._dependents.get(r, [])]
        while stack:
            t = stack.pop()
            # a task whose trigger rule runs it anyway (all_done, one_failed) is not blocked
            if self.state[t] in TASK_WAITING and self.verdict(t) == "block":
                self.state[t] = "blocked"
                blocked.append(t)
                stack.extend(self._dependents[t])
        return sorted(blocked, key=self.seq)

    def gate_ready(self) -> list[str]:
        """Gated groups whose selected tasks have all succeeded and whose gate has not run."""
        out = []
        for g, st in self.gates.items():
            members = [t for t in self.selected if self.workflow.tasks[t].group == g]
            if st == "pending" and all(self.state[t] in OK for t in members):
                out.append(g)
        return out

    def gate_failed(self, group: str) -> list[str]:
        self.gates[group] = "failed"
        waiting = [t for t in self.selected if group in self.gates_needed(t)]
        for t in waiting:
            if self.state[t] == "pending" and self.verdict(t) == "block":
                self.state[t] = "blocked"
        return sorted(
            {*(t for t in waiting if self.state[t] == "blocked"), *self.block_downstream(waiting)},
            key=self._seq.__getitem__,
        )

    def cancel_pending(self) -> list[str]:
        out = [t for t in self.selected if self.state[t] in TASK_WAITING]
        for t in out:
            self.state[t] = "cancelled"
        return out
