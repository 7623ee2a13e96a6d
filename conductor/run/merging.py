"""Merging a validated attempt into the integration branch, now or once a person approved it.

An attempt whose task needs no approval merges right after its checks (``merge_result``,
called by :mod:`~conductor.run.attempt`). One whose task says ``approve: true`` stops there
instead (``hold``): its commit is on its attempt branch and in the store, its worktree is
kept, and the runner (:mod:`~conductor.run.approval`) merges that commit later, from the
store alone (``merge_held``), so an approval works the same after a runner restart.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from conductor.errors import ConductorError, MergeConflict
from conductor.git.blame import last_merged_task
from conductor.run.faults import crash_point
from conductor.run.outcome import Outcome

if TYPE_CHECKING:
    from conductor.run.attempt import Attempt
    from conductor.run.context import RunContext
    from conductor.spec.model import Task
    from conductor.state.records import AttemptRow


def merge_result(
    ctx: RunContext, task: Task, n: int, post: str, start: str, cost: float | None
) -> Outcome:
    """Merge attempt ``n``'s commit ``post``; a conflict is a failed (retriable) Outcome
    naming the paths and, where git can say, whose merge it ran into."""
    subject = f"conductor: merge {task.id} ({task.title or task.id})"
    tr = {"Conductor-Run": ctx.run_id, "Conductor-Task": task.id}
    try:
        merge = ctx.ws.merge(ctx.wf.integration_branch, post, subject, tr)
        crash_point("merged")  # on the branch, not yet in the store
    except MergeConflict as exc:
        # which task's merge it ran into: the summary says whose change the retry built on
        over = last_merged_task(ctx.ws, ctx.wf.integration_branch, start, exc.paths)
        ctx.emit("conflict", task.id, paths=exc.paths, attempt=n, over=over)
        return Outcome(task.id, n, False, str(exc), conflict=True,
                       output=", ".join(exc.paths), result_commit=post)  # fmt: skip
    ctx.emit("merged", task.id, commit=merge[:12], attempt=n)
    return Outcome(task.id, n, True, merge_commit=merge, result_commit=post, cost_usd=cost)


def hold(att: Attempt, post: str, cost: float | None) -> Outcome:
    """Stop a validated attempt before its merge: it waits for `conductor approve`."""
    att.update(state="awaiting_approval", finished=time.time())  # its work is done
    att.ctx.release(att.tid)  # its port and cancel flag: no process of it runs any more
    return Outcome(att.tid, att.n, False, "awaiting approval", awaiting_approval=True,
                   result_commit=post, cost_usd=cost,
                   extras={"session_id": att.session_id, "diff_base": att.start_sha})  # fmt: skip


def merge_held(ctx: RunContext, task: Task, att: AttemptRow) -> Outcome:
    """Merge an approved attempt's commit, as recorded in the store (any runner may)."""
    n, post = att["n"], att["post_commit"] or ""
    try:
        out = merge_result(ctx, task, n, post, att["pre_commit"] or "", att["cost_usd"])
    except ConductorError as exc:  # git trouble: retriable, like any attempt's
        out = Outcome(task.id, n, False, str(exc), result_commit=post)
    ctx.store.update_attempt(ctx.run_id, task.id, n, state="succeeded" if out.ok else "failed",
                             finished=time.time(), error=None if out.ok else out.error)  # fmt: skip
    return out
