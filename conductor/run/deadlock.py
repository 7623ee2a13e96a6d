"""Starvation and deadlock: tasks remain, none runs, and none can start.

Every remaining task then waits on something that will not change by itself: a pool
whose quota is spent, a closed pool (``slots: 0``), a pool without a live worker, an
agent or pool paused by a usage limit whose end nobody stated. Left alone the run would
hang; instead, once that has lasted ``deadlock_grace``, the runner emits a ``deadlock``
alert naming each waiting task and what it waits for, and the run ends ``failed``
(resumable: raise the quota, open the pool, and ``conductor resume``).

One cause is waited out instead: a usage-limit pause whose reset time the agent stated.
When every task waits only on such pauses, the run says until when and keeps waiting.

Not a deadlock: a task running, a gate running, a retry's backoff, a task held for a
person's approval, dispatch paused for memory or disk (its own alert says so).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from conductor.run.scheduler import Scheduler
from conductor.state.states import TASK_HELD, TASK_TERMINAL


@dataclass(frozen=True)
class Wait:
    """What one remaining task waits for. ``root``: it could start but for ``reason``
    (others wait on a dependency); ``until``: when that ends by itself, if known."""

    task: str
    reason: str
    root: bool = True
    until: float | None = None

    def doc(self) -> dict[str, object]:
        return {"task": self.task, "reason": self.reason, "until": self.until}


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def _moving(sched: Scheduler, now: float) -> bool:
    """Whether something is under way or will happen by itself (no stall)."""
    if sched.running() or sched.paused or sched.gate_ready():
        return True
    if any(st == "running" for st in sched.gates.values()) or sched.in_states(TASK_HELD):
        return True
    return any(sched.not_before.get(t, 0.0) > now for t in sched.in_states(("retrying",)))


def stalled(sched: Scheduler, now: float) -> list[Wait] | None:
    """What each remaining task waits for when nothing runs and nothing can start; None
    while the run is moving (or done). Asked at every turn of the run's loop, so the
    answer for a moving run costs no look at every task."""
    if sched.all_settled() or _moving(sched, now):
        return None
    remaining = [t for t in sched.selected if sched.state[t] not in TASK_TERMINAL]
    ready = set(sched.ready(now))
    return [_wait_of(sched, t, t in ready) for t in remaining]


def _wait_of(sched: Scheduler, task_id: str, ready: bool) -> Wait:
    unmet = [d for d in sched.deps_of(task_id) if sched.state[d] not in TASK_TERMINAL]
    if unmet and not ready:
        return Wait(task_id, "waits for " + ", ".join(unmet), root=False)
    agent = sched.agent_of[task_id]
    if agent in sched.held:
        until = sched.held[agent]
        known = until if agent in sched.known_reset else None
        return Wait(task_id, f"agent {agent} paused by a usage limit until {clock(until)}"
                    + ("" if known else " (a guess: the agent did not say)"), until=known)
    if ready:
        pool = sched.pool_of(task_id)
        name = pool.name  # a stated reset helps only a pool held by nothing else
        stated = name in sched.pool_known and pool.slots != 0 and not (
            name in sched.pool_paused or name in sched.pool_down)
        reset = sched.pool_held.get(name) if stated else None
        return Wait(task_id, sched.wait_reason(task_id), until=reset)
    return Wait(task_id, "waits for an earlier wave to finish", root=False)


def describe(waits: list[Wait]) -> str:
    """``T3: pool gpu paused: …; T4: waits for T3`` (the roots first)."""
    ordered = [w for w in waits if w.root] + [w for w in waits if not w.root]
    return "; ".join(f"{w.task}: {w.reason}" for w in ordered)


class Watchdog:
    """Tells a stall apart from a deadlock, given the grace. Call ``check`` each turn of
    the run's loop; it returns ``"deadlock"`` once, or ``"waiting"`` (a stated reset
    will end the stall) the first time each new reset time is seen, else ``None``."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.since: float | None = None  # when the current stall began
        self.waits: list[Wait] = []
        self._told: float | None = None  # the reset time last announced

    def check(self, sched: Scheduler, now: float) -> str | None:
        waits = stalled(sched, now)
        if waits is None:
            self.since = sched.alarm = None
            return None
        self.waits = waits
        roots = [w for w in waits if w.root]
        if roots and all(w.until is not None for w in roots):
            self.since = sched.alarm = None
            until = self.resumes_at()
            if until == self._told:
                return None
            self._told = until
            return "waiting"
        if self.since is None:
            self.since = now
            sched.alarm = now + self.grace_s  # the loop wakes up for the verdict
        return "deadlock" if now - self.since >= self.grace_s else None

    def resumes_at(self) -> float:
        """The earliest stated reset among the waiting tasks (after a ``waiting``)."""
        return min(w.until for w in self.waits if w.root and w.until is not None)
