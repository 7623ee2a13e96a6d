"""A store fault while a run is driven: wait out another process's lock, stop on the rest.

The engine's loop (engine.py) treats the store as always there. This runner keeps it so
and adds what a real disk does: a `state.db` locked by another process is waited on, with
a warning, instead of failing tasks; a write that fails for good (disk full, read-only)
stops dispatch, stops the running agents gracefully (each attempt commits its own work to
its branch first), leaves the store as a `kill -9` would (which `resume` is proven to pick
up) and ends the runner with one message and exit 1. Kept apart from engine.py so the
loop stays readable and the fault policy is in one place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from conductor.errors import StoreError
from conductor.run.approval import ApprovingRunner
from conductor.run.context import RunContext
from conductor.run.gates import GateOutcome
from conductor.run.outcome import Outcome
from conductor.run.scheduler import Scheduler
from conductor.state.records import EventRow
from conductor.state.states import TASK_IN_PROGRESS

LOCK_POLL_S = 5.0  # how long SQLite waits per try before we warn (again) and try again
WARN_EVERY_S = 30.0  # repeat the "still locked" warning this often
# an Outcome's extras key (set in attempt.py, which cannot import this module): the
# attempt stopped on a store fault, its work committed
STORE_FAULT = "store_fault"

_T = TypeVar("_T")
log = logging.getLogger("conductor")


class GuardedRunner(ApprovingRunner):
    """The engine's Runner (with approvals), the store's faults handled (module docstring)."""

    def __init__(self, ctx: RunContext, sched: Scheduler, fail_fast: bool = False) -> None:
        super().__init__(ctx, sched, fail_fast)
        self.fault: StoreError | None = None
        self._locked_since: float | None = None  # when the current lock wait was warned of
        self._warned_at = 0.0
        ctx.store.wait_when_locked(self._on_locked, LOCK_POLL_S)

    # -- another process holds the lock ----------------------------------------------

    def _on_locked(self, fault: StoreError, waited: float) -> bool:
        """Called by the store (on whichever thread writes) each time a lock wait ran out."""
        now = time.monotonic()
        if self._locked_since is None or now - self._warned_at >= WARN_EVERY_S:
            self._locked_since = self._locked_since or now - waited
            self._warned_at = now
            text = f"{fault}; waiting for it ({waited:.0f}s so far)"
            log.warning("%s", text)
            # straight to the sinks: the store cannot take this event while it is locked
            self._tell("warning", text, "writes wait")
        return not self.ctx.kill_now.is_set()  # a second Ctrl-C stops waiting

    def _lock_released(self) -> None:
        if self._locked_since is None:
            return
        waited = time.monotonic() - self._locked_since
        self._locked_since = None
        log.info("state store lock released after %.0fs", waited)
        self.ctx.emit("system_alert", None, level="warning", action="continued",
                      alert=f"the state store was locked by another process for "
                            f"{waited:.0f}s")  # fmt: skip

    def _tell(self, level: str, alert: str, action: str) -> None:
        """An alert for the sinks (console, log) that the store cannot record now."""
        row: EventRow = {"id": 0, "run_id": self.ctx.run_id, "ts": time.time(),
                         "kind": "system_alert", "level": level, "task_id": None,
                         "data": {"alert": alert, "action": action}}  # fmt: skip
        for sink in list(self.ctx.emit.sinks):
            try:
                sink(row)
            except Exception as exc:  # a sink's trouble must not hide the store's
                log.warning("sink failed on a store alert: %r", exc)

    # -- a write failed for good -----------------------------------------------------

    def _stop_on(self, exc: StoreError) -> None:
        if self.fault is None:
            self.fault = exc
            log.error("state store fault, stopping the run: %s", exc)
            self._tell("error", str(exc), "run stopped; running agents stop, their work "
                       "is committed to their branches")  # fmt: skip
        self.interrupted = True
        self.ctx.stop()

    def _guard(self, step: Callable[[], _T]) -> _T | None:
        if self.fault is not None:
            return None  # the store failed: record nothing more, resume reads git
        try:
            return step()
        except StoreError as exc:
            self._stop_on(exc)
            return None

    def _dispatch(self) -> None:
        self._guard(super()._dispatch)

    def _heartbeat(self) -> None:
        self._guard(super()._heartbeat)
        self._guard(self._lock_released)  # a write went through: the lock is gone

    def _on_outcome(self, out: Outcome) -> None:
        fault = out.extras.get(STORE_FAULT)
        if isinstance(fault, StoreError):
            self._stop_on(fault)
        self._guard(lambda: super(GuardedRunner, self)._on_outcome(out))

    def _on_gate(self, out: GateOutcome) -> None:
        self._guard(lambda: super(GuardedRunner, self)._on_gate(out))

    def _finish(self) -> str:
        if self.fault is None:
            return super()._finish()
        self._mark_interrupted()
        fault = self.fault
        raise StoreError(
            f"run {self.ctx.run_id} stopped: {fault}",
            f"the work of running tasks is committed on their attempt branches; fix that "
            f"(free space, make it writable, stop the other process), then "
            f"`conductor resume {self.ctx.run_id}`",
            fault.path,
            fault.kind,
        )

    def _mark_interrupted(self) -> None:
        """Best effort: say `interrupted` where the store still takes it (a kill -9
        leaves less, and `resume` copes with that too)."""
        ctx = self.ctx
        active = [t for t in self.sched.selected if self.sched.state[t] in TASK_IN_PROGRESS]
        try:
            with ctx.store.tx():
                for t in active:
                    ctx.store.update_task(ctx.run_id, t, state="interrupted",
                                          error="stopped: the state store failed")  # fmt: skip
                ctx.store.update_run(ctx.run_id, state="interrupted", finished=time.time())
        except StoreError as exc:
            log.warning("could not record the interruption: %s", exc)
