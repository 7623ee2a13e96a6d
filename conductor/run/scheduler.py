"""Which task runs next: dependencies, gates, waves, capacity, pools, policy and scopes.

Pure bookkeeping over task states; the engine feeds it transitions (and run/quotas.py
what pools spent and which are paused) and asks it for the next tasks to start. No I/O,
so its rules are unit-testable. The order among ready tasks is the policy's
(run/policies.py); the scheduler is also the :class:`SchedulerView` a policy reads.

Each transition updates counts and sets (run/readiness.py) rather than each dispatch
scanning every task, so a dispatch costs what changed, not the size of the run. With a
built-in `default` or `fifo` policy the ready queue is kept sorted by the policy's key;
another policy (`cost-aware`, one's own) orders the whole ready queue at each dispatch.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from conductor.plan.graph import group_members, task_deps
from conductor.run.policies import DefaultPolicy, FifoPolicy, Policy, default_key
from conductor.run.queue import Key, ReadyQueue
from conductor.run.readiness import GateStates, Readiness
from conductor.run.triggers import Verdict
from conductor.spec.model import Pool, Workflow
from conductor.state.states import TASK_ACTIVE, TASK_WAITING

# policies whose order is a fixed key per task, so the queue stays sorted as it changes
_KEYED: dict[type, str] = {DefaultPolicy: "default", FifoPolicy: "fifo"}


@dataclass
class Scheduler:
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
        for t in self.selected:
            self.state.setdefault(t, "pending")
            self.agent_of.setdefault(t, self.workflow.tasks[t].agent)
        used = {wf.tasks[t].group for t in chosen}
        gates = dict(self.gates)
        for g, group in wf.groups.items():
            if group.validate and g in used:
                gates.setdefault(g, "pending")
        # a gate written (the engine starts or ends it) is news to the tasks it holds
        self.gates = GateStates(gates, lambda g: self._book.gate_changed(g))
        self._ready_at: dict[str, int] = {}  # task -> when it joined the ready queue
        self._tick = itertools.count()
        self._queue = ReadyQueue()  # ready (passed the time filters once), by pool
        self._cands: set[str] = set()  # may run but for the clock: retry backoff, a hold
        self._fresh: set[str] = set()  # joined the queue, not yet announced as waiting
        self._nb: set[str] = set()  # queued with a retry deadline (a clock may hold them)
        self._mode = ""  # the policy the queue's keys are for (see _KEYED)
        self._now = 0.0
        self._last: list[str] = []  # another policy: the last dispatch's ready list
        self._picked: list[str] = []  # the last dispatch's batch
        self._book = Readiness(wf, self.selected, self._deps, self.wave,
                               self.strategy != "waves", self.state, self.gates,
                               self._on_admit)  # fmt: skip

    # -- queries ------------------------------------------------------------

    def gates_needed(self, task_id: str) -> list[str]:
        """Gated groups this task waits for: those its own group depends on."""
        return self._book.gates_of[task_id]

    def running(self) -> list[str]:
        return sorted(self._book.in_states(TASK_ACTIVE), key=self._seq.__getitem__)

    def in_states(self, states: Iterable[str]) -> set[str]:
        """The tasks in any of ``states`` now."""
        return self._book.in_states(frozenset(states))

    def all_settled(self) -> bool:
        """Every task is terminal (gates may still run)."""
        return self._book.terminal == len(self.selected)

    def finished(self) -> bool:
        gates_busy = any(s == "running" for s in self.gates.values())
        return not gates_busy and self.all_settled()

    def _open_wave(self) -> int:
        """The highest wave allowed to start: with `waves`, the lowest unfinished one."""
        return self._book.open_wave

    def deps_of(self, task_id: str) -> list[str]:
        """The selected tasks it depends on."""
        return self._deps[task_id]

    def verdict(self, task_id: str) -> Verdict:
        """What the task's trigger rule says, given its dependencies and gates (triggers.py)."""
        return self._book.verdict(task_id)

    def settle(self) -> list[tuple[str, str, str]]:
        """Waiting tasks their trigger rule will never run, now skipped or blocked, as
        (task, state, why); see ``Readiness.settle``."""
        return self._book.settle(self._put, self._seq)

    def take_when_due(self) -> list[str]:
        """Tasks with a `when:` that became runnable since the last call, in file order."""
        due, self._book.when_due = self._book.when_due, set()
        return sorted(due, key=self._seq.__getitem__)

    # -- the ready queue ----------------------------------------------------

    def _on_admit(self, task_id: str, yes: bool) -> None:
        """Its dependencies and wave now let it run (``yes``), or no longer do."""
        if yes:
            self._cands.add(task_id)
            return
        self._cands.discard(task_id)
        self._queue.discard(task_id)
        self._nb.discard(task_id)
        if self.state[task_id] not in TASK_WAITING:
            self._fresh.discard(task_id)

    def _timely(self, task_id: str, now: float) -> bool:
        """Neither a retry's backoff nor a usage-limit hold on its agent holds it now."""
        return (self.not_before.get(task_id, 0.0) <= now
                and self.held.get(self.agent_of[task_id], 0.0) <= now)  # fmt: skip

    def _key(self, task_id: str) -> Key:
        if self._mode == "default":
            return default_key(task_id, self)
        if self._mode == "fifo":
            return (self.ready_since(task_id), self._seq[task_id])
        return (self._seq[task_id],)  # the policy orders them at each dispatch

    def _find(self, now: float) -> None:
        """Admitted tasks the clock lets go join the queue (in file order: fifo's tie)."""
        mode = _KEYED.get(type(self.policy), "any")
        if mode != self._mode:  # the policy was set after construction: keys anew
            self._mode, queued = mode, self._queue.items()
            self._queue.clear()
            self._queue.add([(t, pool, self._key(t)) for t, pool in queued])
        due = sorted((t for t in self._cands if self._timely(t, now)), key=self._seq.__getitem__)
        if due:  # a new set: one emptied by discards would still be iterated at full size
            self._cands = self._cands.difference(due)
        items = []
        for t in due:
            self._ready_at.setdefault(t, next(self._tick))
            items.append((t, self.workflow.tasks[t].pool, self._key(t)))
            self._fresh.add(t)
            if t in self.not_before:
                self._nb.add(t)
        self._queue.add(items)

    def ready(self, now: float) -> list[str]:
        """Tasks whose dependencies and gates are satisfied, best first."""
        self._find(now)
        found = [t for t in self._queue.merged() if self._timely(t, now)]
        return found if self._mode != "any" else self._ordered(found)

    def _ordered(self, found: list[str]) -> list[str]:
        """The policy's order, kept honest: a user's policy that drops or invents ids
        cannot lose a task (left-outs follow in the default order) or start a stranger."""
        ranked = list(dict.fromkeys(t for t in self.policy.order(list(found), self) if t in found))
        rest = sorted(set(found) - set(ranked), key=lambda t: default_key(t, self))
        return ranked + rest

    def next_batch(self, now: float) -> list[str]:
        """What to start now: ready tasks within capacity whose scopes are free."""
        self._find(now)
        self._now, self._picked = now, []
        self._last = self.ready(now) if self._mode == "any" else []
        if self.paused:
            return []
        shut: set[str] = set()
        order = iter(self._last) if self._mode == "any" else self._queue.merged(shut)
        self._picked = self._walk(order, shut, now)
        return self._picked

    def _walk(self, order: Iterator[str], shut: set[str], now: float) -> list[str]:
        """Down the queue, what fits: a pool found closed or full is ``shut`` (it stays so
        for the rest of the walk), so the walk does not visit its other tasks."""
        busy, tasks = self.running(), self.workflow.tasks
        in_pool: dict[str, int] = {}
        for o in busy:
            in_pool[tasks[o].pool] = in_pool.get(tasks[o].pool, 0) + 1
        picked: list[str] = []
        for t in order:
            if len(busy) + len(picked) >= self.concurrency:
                break
            if not self._timely(t, now):
                continue
            pool = self.pool_of(t)
            if self.pool_stop(t) is not None or in_pool.get(pool.name, 0) >= pool.cap(
                self.concurrency
            ):
                shut.add(tasks[t].pool)
                continue
            others = (*busy, *picked)
            if any(self._clash(t, o) for o in others) or self._capped(t, others) is not None:
                continue
            picked.append(t)
            in_pool[tasks[t].pool] = in_pool.get(tasks[t].pool, 0) + 1
        return picked

    @property
    def waiting(self) -> list[str]:
        """Ready but not started at the last dispatch, best first."""
        if self._mode == "any":
            return [t for t in self._last if t not in self._picked]
        return [t for t in self._queue.merged()
                if self._timely(t, self._now) and t not in self._picked]  # fmt: skip

    def newly_queued(self) -> list[tuple[int, str]]:
        """(position in ``waiting``, task) of the waiting tasks not listed before, in
        queue order: a dispatch looks only at the tasks that joined the queue."""
        if self._mode == "any":
            out = [(i, t) for i, t in enumerate(self.waiting, 1) if t in self._fresh]
        else:
            now, queue = self._now, self._queue
            out = []
            late = sorted(queue.key(t) for t in self._late(now))  # queued, not waiting
            for t in self._fresh:
                if t in queue and self._timely(t, now) and t not in self._picked:
                    key = queue.key(t)
                    out.append((queue.rank(key) - bisect.bisect_left(late, key) + 1, t))
            out.sort()
        if out:  # a new set, not discards: an emptied set is still iterated at full size
            self._fresh = self._fresh.difference(t for _, t in out)
        return out

    def _late(self, now: float) -> list[str]:
        """Queued tasks not in ``waiting``: held back by the clock, or just picked."""
        if any(until > now for until in self.held.values()):
            late = [t for t, _ in self._queue.items() if not self._timely(t, now)]
        else:
            late = [t for t in self._nb if not self._timely(t, now)]
        return late + [t for t in self._picked if t in self._queue]

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
        retrying = self._book.by_state.get("retrying", ())
        waits = [d for t in retrying if (d := self.not_before.get(t, 0.0)) > now]
        waits += [d for d in (*self.held.values(), *self.pool_held.values()) if d > now]
        waits += [self.alarm] if self.alarm is not None and self.alarm > now else []
        return min(waits) if waits else None

    # -- transitions --------------------------------------------------------

    def set(self, task_id: str, state: str) -> None:
        self._put(task_id, state)
        if state not in TASK_WAITING:  # started or settled: it leaves the ready queue
            self._ready_at.pop(task_id, None)

    def _put(self, task_id: str, state: str) -> None:
        old, self.state[task_id] = self.state[task_id], state
        self._book.moved(task_id, old, state)

    def block_downstream(self, roots: Iterable[str]) -> list[str]:
        """Mark every not-yet-started task downstream of ``roots`` blocked."""
        blocked: list[str] = []
        dependents = self._book.dependents
        stack = [d for r in roots for d in dependents.get(r, [])]
        while stack:
            t = stack.pop()
            # a task whose trigger rule runs it anyway (all_done, one_failed) is not blocked
            if self.state[t] in TASK_WAITING and self.verdict(t) == "block":
                self._put(t, "blocked")
                blocked.append(t)
                stack.extend(dependents[t])
        return sorted(blocked, key=self.seq)

    def gate_ready(self) -> list[str]:
        """Gated groups whose selected tasks have all succeeded and whose gate has not run."""
        return self._book.gate_ready()

    def gate_failed(self, group: str) -> list[str]:
        self.gates[group] = "failed"
        waiting = self._book.needers[group]
        for t in waiting:
            if self.state[t] == "pending" and self.verdict(t) == "block":
                self._put(t, "blocked")
        return sorted(
            {*(t for t in waiting if self.state[t] == "blocked"), *self.block_downstream(waiting)},
            key=self._seq.__getitem__,
        )

    def cancel_pending(self) -> list[str]:
        out = sorted(self._book.in_states(TASK_WAITING), key=self._seq.__getitem__)
        for t in out:
            self._put(t, "cancelled")
        return out
