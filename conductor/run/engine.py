"""The run loop: dispatch ready tasks to worker threads, react to their outcomes.

The main thread owns the scheduler; workers own one attempt (or one group gate)
each and report back through a queue. State changes go to the store first, then
to the scheduler, so what the store says is never behind what happened.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time

from conductor.errors import ConductorError
from conductor.run.attempt import Attempt
from conductor.run.conditions import Conditions
from conductor.run.context import RunContext
from conductor.run.faults import crash_point
from conductor.run.gates import GateOutcome, run_gate
from conductor.run.outcome import Outcome
from conductor.run.quotas import Quotas
from conductor.run.retries import TaskBook, backoff_s, may_retry, record_pause, record_retry
from conductor.run.scheduler import Scheduler
from conductor.state.endings import run_ending
from conductor.state.states import TASK_OK, TASK_WAITING

HEARTBEAT_S = 2.0


class Runner:
    def __init__(self, ctx: RunContext, sched: Scheduler, fail_fast: bool = False) -> None:
        self.ctx = ctx
        self.sched = sched
        self.fail_fast = fail_fast
        self.done: queue.Queue[Outcome | GateOutcome] = queue.Queue()
        self.books = {t: TaskBook() for t in sched.selected}
        self.interrupted = False
        self.cancelled = False
        self._workers: list[threading.Thread] = []
        self._queued: set[str] = set()
        self.quotas = Quotas(ctx, sched)  # the budget, pool quotas and pauses, deadlock
        self._beat = 0.0
        self.conditions = Conditions(ctx, sched)  # trigger rules and `when:`

    # -- control from other threads / signal handlers -------------------------

    def interrupt(self) -> None:
        """First call: stop dispatching and stop agents gracefully. Second: kill now."""
        if self.ctx.stopping.is_set():
            self.ctx.kill_now.set()
        self.interrupted = True
        self.ctx.stop()
        self.done.put_nowait(GateOutcome("", True))  # wake the loop

    # -- the loop -------------------------------------------------------------

    def run(self) -> str:
        ctx = self.ctx
        ctx.emit(
            "run_started",
            tasks=len(self.sched.selected),
            strategy=self.sched.strategy,
            concurrency=self.sched.concurrency,
            gates=list(self.sched.gates),  # the groups whose gate this run has
        )
        self._heartbeat()  # a cancel may have come before the first dispatch
        while True:
            if not ctx.stopping.is_set():
                self._dispatch()
            if self.sched.finished() or (ctx.stopping.is_set() and not self._alive()):
                break
            if not ctx.stopping.is_set() and self.quotas.deadlocked():
                break  # nothing runs, nothing can start: the run ends failed (resumable)
            self._wait_one()
        for w in self._workers:
            w.join()
        return self._finish()

    def _alive(self) -> bool:
        self._workers = [w for w in self._workers if w.is_alive()]
        return bool(self._workers) or not self.done.empty()

    def _dispatch(self) -> None:
        self.conditions.settle(self._fail)  # skipped and blocked first: they free the way
        now = time.time()
        self.quotas.tick(now)  # usage-limit holds that ended are lifted
        batch = self.sched.next_batch(now)
        for task_id in batch:
            self._start_task(task_id)
        for group in self.sched.gate_ready():
            self._start_gate(group)
        self._announce_queue()

    def _announce_queue(self) -> None:
        """One `task_queued` per task that is ready but has to wait, with why."""
        for pos, t in self.sched.newly_queued():  # only what joined the queue: O(changes)
            if t in self._queued:
                continue
            self._queued.add(t)
            why = "dispatch paused" if self.sched.paused else self.sched.wait_reason(t)
            self.ctx.emit("task_queued", t, reason=why, position=pos)

    def _wait_one(self) -> None:
        now = time.time()
        wake = self.sched.next_wakeup(now)
        timeout = HEARTBEAT_S if wake is None else max(0.01, min(HEARTBEAT_S, wake - now))
        items = []
        try:
            items.append(self.done.get(timeout=timeout))
            while True:  # take every finished task before the next dispatch scan
                items.append(self.done.get_nowait())
        except queue.Empty:
            pass
        self._heartbeat()
        for item in items:
            if isinstance(item, Outcome):
                self._on_outcome(item)
            elif isinstance(item, GateOutcome) and item.group:
                self._on_gate(item)

    def _heartbeat(self) -> None:
        now = time.time()
        if now - self._beat < HEARTBEAT_S:
            return
        self._beat = now
        ctx = self.ctx
        ctx.store.update_run(ctx.run_id, heartbeat=now)
        ctx.emit.forward_foreign()  # e.g. `conductor progress` from inside a task
        self.quotas.watch_resources()  # memory or disk short: dispatch pauses
        row = ctx.store.run(ctx.run_id)
        if row is not None and row["state"] == "cancelling" and not ctx.stopping.is_set():
            self.cancelled = True
            ctx.stop()
        for t in ctx.store.tasks_in_state(ctx.run_id, "cancelling"):
            self._cancel_task(t)

    def _cancel_task(self, task_id: str) -> None:
        """`conductor cancel RUN --task T`: stop it if running, drop it if waiting."""
        if task_id in self.sched.state and self.sched.state[task_id] in TASK_WAITING:
            self.sched.set(task_id, "cancelled")
            self._cancelled(task_id)
        elif not self.ctx.cancel_task(task_id):
            self.ctx.store.update_task(
                self.ctx.run_id, task_id, state=self.sched.state.get(task_id, "cancelled")
            )

    def _cancelled(self, task_id: str) -> None:
        self.ctx.store.update_task(
            self.ctx.run_id, task_id, state="cancelled", finished=time.time(), error="cancelled"
        )
        self.ctx.emit("task_cancelled", task_id)
        self._mark_blocked(self.sched.block_downstream([task_id]), task_id)

    # -- tasks ----------------------------------------------------------------

    def _start_task(self, task_id: str) -> None:
        self._queued.discard(task_id)
        book = self.books[task_id]
        book.attempts += 1
        self.sched.set(task_id, "running")
        self.ctx.store.update_task(
            self.ctx.run_id,
            task_id,
            state="running",
            attempts=book.attempts,
            started=time.time(),
            error=None,
        )
        task = self.ctx.wf.tasks[task_id]
        agent = self.sched.agent_of[task_id]
        if agent != task.agent:  # moved to its profile's fallback by a usage limit
            task = dataclasses.replace(task, agent=agent)
        attempt = Attempt(self.ctx, task, book.attempts, book.prior)
        self._spawn(lambda: self._attempt_worker(attempt), f"task-{task_id}")

    def _spawn(self, fn: object, name: str) -> None:
        assert callable(fn)
        t = threading.Thread(target=fn, name=name, daemon=True)
        self._workers.append(t)
        t.start()

    def _attempt_worker(self, attempt: Attempt) -> None:
        try:
            outcome = attempt.run()
        except Exception as exc:  # a bug must fail the task, never hang the run
            outcome = Outcome(attempt.tid, attempt.n, False, f"internal error: {exc!r}")
        keep = self.ctx.wf.workspace.keep  # one held for approval is kept for its reviewer
        goes = not (keep == "always" or outcome.awaiting_approval
                    or (keep == "on_failure" and not outcome.ok))  # fmt: skip
        # into the pool before the slot is freed, so that the next task finds it there
        parked = goes and self.ctx.ws.park_worktree(attempt.worktree, outcome.result_commit)
        self.done.put(outcome)  # free the slot first; removing the worktree can overlap
        if goes and not parked:
            self._retire(attempt)

    def _retire(self, attempt: Attempt) -> None:
        try:
            self.ctx.ws.remove_worktree(attempt.worktree, force=True)
        except ConductorError as exc:
            self.ctx.emit("task_warning", attempt.tid, warning=f"worktree not removed: {exc}")

    def _on_outcome(self, out: Outcome) -> None:
        ctx, tid = self.ctx, out.task_id
        now = time.time()
        if out.ok:
            self.sched.set(tid, "succeeded")
            ctx.store.update_task(
                ctx.run_id,
                tid,
                state="succeeded",
                finished=now,
                merge_commit=out.merge_commit,
                cost_usd=out.cost_usd,
                result_commit=out.result_commit,
            )
            ctx.emit("task_completed", tid, attempt=out.attempt)
            crash_point("recorded")
        elif out.interrupted and not ctx.stopping.is_set():  # this task alone was cancelled
            self.sched.set(tid, "cancelled")
            ctx.store.update_task(ctx.run_id, tid, result_commit=out.result_commit)
            self._cancelled(tid)
        elif out.interrupted:
            state = "cancelled" if self.cancelled else "interrupted"
            self.sched.set(tid, "cancelled")
            ctx.store.update_task(
                ctx.run_id,
                tid,
                state=state,
                finished=now,
                error="interrupted",
                result_commit=out.result_commit,
            )
        elif out.paused:
            self._pause(out)
        elif self._should_retry(out):
            self._retry(out)
        else:
            self._fail(out)
        self._check_budget()

    def _pause(self, out: Outcome) -> None:
        """A rate/usage limit: hold the agent profile until it resets (or hand its
        waiting tasks to the profile's fallback); the attempt costs no retry."""
        ctx, tid = self.ctx, out.task_id
        agent = self.sched.agent_of[tid]
        book = self.books[tid]
        record_pause(book, out)
        wait = backoff_s(book.pauses, ctx.settings.retry_backoff_s) * 30
        until = out.resume_at or time.time() + wait
        profile = ctx.wf.agents.get(agent)
        fallback = profile.fallback if profile is not None else None
        if fallback:
            for t in self.sched.selected:
                if self.sched.agent_of[t] == agent and self.sched.state[t] != "succeeded":
                    self.sched.agent_of[t] = fallback
        else:  # the profile and the task's pool wait for the reset
            self.quotas.hold(tid, agent, until, stated=out.resume_at is not None)
        self.sched.set(tid, "retrying")
        ctx.store.update_task(ctx.run_id, tid, state="paused", error=out.error)
        ctx.emit("task_paused", tid, level="warning", agent=agent, error=out.error,
                 resume_at=None if fallback else until, fallback=fallback)  # fmt: skip

    @property
    def budget_reason(self) -> str:
        return self.quotas.budget_reason

    def _check_budget(self) -> None:
        """Pause pools whose quota is reached; stop dispatching once the agents' reported
        cost reaches the run's budget."""
        reason = self.quotas.check()
        if reason:
            self._stop_dispatch(reason)

    def _should_retry(self, out: Outcome) -> bool:
        if self.ctx.stopping.is_set() or self.budget_reason:
            return False
        book = self.books[out.task_id]
        task = self.ctx.wf.tasks[out.task_id]
        if task.budget_usd is not None:
            spent = self.ctx.store.task_cost(self.ctx.run_id, out.task_id)
            if spent >= task.budget_usd:
                out.error += f" (task budget of ${task.budget_usd:g} reached)"
                return False
        return may_retry(task, book, out)

    def _retry(self, out: Outcome) -> None:
        book = self.books[out.task_id]
        delay = record_retry(book, out, self.ctx.settings.retry_backoff_s)
        self.sched.set(out.task_id, "retrying")
        self.sched.not_before[out.task_id] = time.time() + delay
        self.ctx.store.update_task(self.ctx.run_id, out.task_id, state="retrying", error=out.error)
        self.ctx.emit(
            "task_retrying",
            out.task_id,
            attempt=out.attempt,
            error=out.error,
            delay_s=round(delay, 2),
            conflict=out.conflict,
        )

    def _fail(self, out: Outcome) -> None:
        ctx = self.ctx
        self.sched.set(out.task_id, "failed")
        ctx.store.update_task(
            ctx.run_id,
            out.task_id,
            state="failed",
            finished=time.time(),
            error=out.error,
            result_commit=out.result_commit,
        )
        ctx.emit(
            "task_failed",
            out.task_id,
            attempt=out.attempt,
            error=out.error,
            output=out.output[-4000:],
            retriable=False,
        )
        self._mark_blocked(self.sched.block_downstream([out.task_id]), out.task_id)
        if self.fail_fast:
            self._stop_dispatch("fail-fast: " + out.task_id + " failed")

    def _mark_blocked(self, tasks: list[str], cause: str) -> None:
        for t in tasks:
            self.ctx.store.update_task(
                self.ctx.run_id, t, state="blocked", error=f"blocked by {cause}"
            )
            self.ctx.emit("task_blocked", t, cause=cause)

    def _stop_dispatch(self, reason: str) -> None:
        for t in self.sched.cancel_pending():
            self.ctx.store.update_task(self.ctx.run_id, t, state="cancelled", error=reason)

    # -- group gates ----------------------------------------------------------

    def _start_gate(self, group: str) -> None:
        self.sched.gates[group] = "running"
        self.ctx.emit("gate_started", None, group=group)
        self._spawn(lambda: self.done.put(run_gate(self.ctx, group)), f"gate-{group}")

    def _on_gate(self, out: GateOutcome) -> None:
        if out.ok:
            self.sched.gates[out.group] = "passed"
            self.ctx.emit("gate_passed", None, group=out.group)
            return
        self.ctx.emit("gate_failed", None, group=out.group, output=out.output[-4000:])
        self._mark_blocked(self.sched.gate_failed(out.group), f"gate {out.group}")
        if self.fail_fast:
            self._stop_dispatch(f"fail-fast: gate {out.group} failed")

    # -- the end ----------------------------------------------------------------

    def _finish(self) -> str:
        ctx = self.ctx
        if self.ctx.stopping.is_set():
            for t in self.sched.cancel_pending():
                ctx.store.update_task(
                    ctx.run_id,
                    t,
                    state="pending" if self.interrupted and not self.cancelled else "cancelled",
                )
        states = [self.sched.state[t] for t in self.sched.selected]
        if self.cancelled:
            final = "cancelled"
        elif self.interrupted:
            final = "interrupted"
        elif all(s in TASK_OK for s in states):
            final = "succeeded"
        else:
            final = "failed"
        ctx.store.update_run(ctx.run_id, state=final, finished=time.time(),
                             reason=self.budget_reason or self.quotas.deadlock or None)  # fmt: skip
        # from the store, not the scheduler: see `run_ending`
        counts, settled = run_ending(ctx.store, ctx.run_id)
        ctx.emit(
            "run_finished",
            None,
            level="error" if final == "failed" else "info",
            state=final,
            counts=counts,
            settled=[s.doc() for s in settled],
        )
        return final
