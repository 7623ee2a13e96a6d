"""Approval before merge, the runner's side: hold a validated task, act on a decision.

A task with ``approve: true`` stops after its checks (``merging.hold``); this runner
records it as ``awaiting_approval`` and goes on with other work: the task holds no slot
and no worker, its dependents wait, and the run is not finished while it waits. A person
decides from any terminal (``conductor approve`` / ``reject``, :mod:`conductor.ops.approve`),
which only records the decision in the store (task state ``approved`` / ``rejected`` and
its event), as ``cancel --task`` does; the heartbeat here picks it up, as it picks up a
cancel: an approval merges the held commit from the store, a rejection with a message
starts a new attempt told that message (resuming the agent's session where the CLI can),
one without a message fails the task. A decision made while no runner is live waits in
the store; recovery brings held tasks back as they were, and the next runner acts on it.
``--auto-approve`` (CI) merges without waiting, and says so with ``task_approved``.

Kept apart from engine.py, as the store-fault policy is (storewatch.py), so the loop stays
readable; this class sits between the engine's Runner and GuardedRunner.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from conductor.errors import ConductorError
from conductor.run.context import RunContext
from conductor.run.engine import Runner
from conductor.run.faults import crash_point
from conductor.run.merging import merge_held
from conductor.run.outcome import Outcome, Prior
from conductor.run.scheduler import Scheduler
from conductor.state.records import AttemptRow
from conductor.state.states import TASK_HELD
from conductor.state.store import Store


def auto_approve(store: Store, run_id: str) -> bool:
    """The run was started (or resumed) with ``--auto-approve``."""
    row = store.run(run_id)
    return bool(row and json.loads(row["options"] or "{}").get("auto_approve"))


class ApprovingRunner(Runner):
    """The engine's Runner, with tasks held for approval (see the module docstring)."""

    def __init__(self, ctx: RunContext, sched: Scheduler, fail_fast: bool = False) -> None:
        super().__init__(ctx, sched, fail_fast)
        self.auto_approve = auto_approve(ctx.store, ctx.run_id)
        self._polled: float | None = None  # the heartbeat the store was last asked at

    # -- a task comes to be held ---------------------------------------------------

    def _on_outcome(self, out: Outcome) -> None:
        if not out.awaiting_approval:
            super()._on_outcome(out)
            return
        ctx, tid = self.ctx, out.task_id
        self.sched.set(tid, "awaiting_approval")
        state = "approved" if self.auto_approve else "awaiting_approval"
        ctx.store.update_task(ctx.run_id, tid, state=state, error=None,
                              result_commit=out.result_commit)  # fmt: skip
        if self.auto_approve:
            ctx.emit("task_approved", tid, attempt=out.attempt, auto=True)
            self._merge(tid)
        else:
            att = self._held_attempt(tid)
            ctx.emit("task_awaiting_approval", tid, attempt=out.attempt,
                     commit=(out.result_commit or "")[:12],
                     files=att["files_changed"] if att else None,
                     insertions=att["insertions"] if att else None,
                     deletions=att["deletions"] if att else None)  # fmt: skip
            crash_point("awaiting")
        self._check_budget()

    # -- decisions, from the store -------------------------------------------------

    def _heartbeat(self) -> None:
        super()._heartbeat()
        if self._beat != self._polled:  # a real beat, not a throttled call
            first = self._polled is None
            self._polled = self._beat
            if first:
                self._settle_attempts()
            if not self.ctx.stopping.is_set():
                self._poll()

    def _poll(self) -> None:
        store, run_id = self.ctx.store, self.ctx.run_id
        held = [t for t in self.sched.selected if self.sched.state[t] in TASK_HELD]
        if not held:
            return
        if self.auto_approve:  # `resume --auto-approve` of a run with tasks waiting
            for t in held:
                if self.sched.state[t] == "awaiting_approval":
                    store.update_task(run_id, t, state="approved")
                    self.ctx.emit("task_approved", t, auto=True)
        for t in store.tasks_in_state(run_id, "approved"):
            if self.sched.state.get(t) in TASK_HELD:
                self._merge(t)
        for t in store.tasks_in_state(run_id, "rejected"):
            if self.sched.state.get(t) in TASK_HELD:
                self._reject(t)

    def _held_attempt(self, tid: str) -> AttemptRow | None:
        atts = self.ctx.store.attempts(self.ctx.run_id, tid)
        return atts[-1] if atts and atts[-1]["state"] == "awaiting_approval" else None

    def _merge(self, tid: str) -> None:
        """Merge the held commit on a worker thread; its Outcome goes the usual way."""
        att = self._held_attempt(tid)
        self.sched.set(tid, "merging")  # a slot while git merges: it is work in flight
        if att is None or not att["post_commit"]:  # nothing recorded to merge: redo it
            self.done.put(Outcome(tid, self.books[tid].attempts, False, "approved, but the "
                                  "held attempt is not in the store"))  # fmt: skip
            return
        task, ctx = self.ctx.wf.tasks[tid], self.ctx

        def work() -> None:
            try:
                out = merge_held(ctx, task, att)
            except Exception as exc:  # a bug must fail the task, never hang the run
                out = Outcome(tid, att["n"], False, f"internal error: {exc!r}")
            self.done.put(out)
            self._drop_worktree(att, out.ok)

        self._spawn(work, f"merge-{tid}")

    def _reject(self, tid: str) -> None:
        """A message: a new attempt is told it. None: the task fails (no retry)."""
        ctx, book = self.ctx, self.books[tid]
        row = ctx.store.task(ctx.run_id, tid)
        message = ((row["error"] if row else None) or "").strip()
        shown = ctx.secrets.redact(message)  # stored and shown like any other text: masked
        att = self._close_held(tid, "failed", "rejected" + (f": {shown}" if shown else ""))
        n = att["n"] if att else book.attempts
        why = "rejected by the reviewer" + (f": {shown}" if shown else "")
        post = att["post_commit"] if att else None
        if not message or self.budget_reason:
            why += f" (not retried: {self.budget_reason})" if message else ""
            # the engine's failure: recorded, dependents blocked, fail-fast obeyed
            self._fail(Outcome(tid, n, False, why, retriable=False, result_commit=post))
            return
        book.prior = Prior(feedback=message, session_id=att["session_id"] if att else None,
                           commit=post, diff_base=att["pre_commit"] if att else None)  # fmt: skip
        self.sched.set(tid, "retrying")
        self.sched.not_before[tid] = time.time()
        ctx.store.update_task(ctx.run_id, tid, state="retrying", error=why)
        ctx.emit("task_retrying", tid, attempt=n, error=why, delay_s=0, feedback=message)

    # -- cancel, the end, and what a dead runner left ---------------------------------

    def _cancel_task(self, task_id: str) -> None:
        if self.sched.state.get(task_id) not in TASK_HELD:
            super()._cancel_task(task_id)
            return
        self._close_held(task_id, "interrupted", "cancelled while awaiting approval")
        self.sched.set(task_id, "cancelled")
        self._cancelled(task_id)

    def _finish(self) -> str:
        if self.cancelled:  # an interrupted run keeps them held: `resume` picks them up
            for t in self.sched.selected:
                if self.sched.state[t] in TASK_HELD:
                    self._close_held(t, "interrupted", "cancelled while awaiting approval")
                    self.sched.set(t, "cancelled")
                    self.ctx.store.update_task(self.ctx.run_id, t, state="cancelled",
                                               finished=time.time(), error="cancelled")  # fmt: skip
        return super()._finish()

    def _close_held(self, tid: str, state: str, error: str) -> AttemptRow | None:
        att = self._held_attempt(tid)
        if att is not None:
            self.ctx.store.update_attempt(self.ctx.run_id, tid, att["n"], state=state,
                                          finished=time.time(), error=error)  # fmt: skip
            self._drop_worktree(att, False)
        return att

    def _settle_attempts(self) -> None:
        """Held attempts a dead runner left whose task moved on (its approved merge
        reached the branch but not the store; recovery found it): closed, as they ended."""
        for a in self.ctx.store.attempts(self.ctx.run_id):
            tid = a["task_id"]
            if a["state"] != "awaiting_approval" or self.sched.state.get(tid) in TASK_HELD:
                continue
            ok = self.sched.state.get(tid) == "succeeded"
            self.ctx.store.update_attempt(self.ctx.run_id, tid, a["n"], finished=time.time(),
                                          state="succeeded" if ok else "interrupted")  # fmt: skip
            self._drop_worktree(a, ok)

    def _drop_worktree(self, att: AttemptRow, ok: bool) -> None:
        """The held worktree, once decided: kept or removed as `workspace.keep` says."""
        keep = self.ctx.wf.workspace.keep
        if keep == "always" or (keep == "on_failure" and not ok) or not att["worktree"]:
            return
        try:
            self.ctx.ws.recycle_worktree(Path(att["worktree"]))
        except ConductorError as exc:
            self.ctx.emit("task_warning", att["task_id"], warning=f"worktree not removed: {exc}")
