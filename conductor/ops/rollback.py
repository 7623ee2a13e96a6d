"""Rolling a run back (DESIGN §3, §4).

``rollback_run`` moves the integration branch back to where it stood before a run, with a
compare-and-swap, after parking the old head under ``refs/conductor/rollback/<run>/<stamp>``
so nothing becomes unreachable. ``rollback_task`` reverts one task's merge with a revert
commit instead. Either way the tasks whose merges left the branch are marked ``rolled_back``
in the store, so the next ``conductor run`` no longer counts them up to date.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from conductor.errors import MergeConflict, UserError
from conductor.git import refs
from conductor.git.workspace import BranchMoved, LoggedCommit, Workspace
from conductor.ops.common import run_row
from conductor.state.events import Emitter
from conductor.state.liveness import may_be_live
from conductor.state.records import RunRow
from conductor.state.store import Store


@dataclass(frozen=True)
class Rollback:
    """What a rollback did; ``describe()`` is the line the CLI prints."""

    run_id: str
    branch: str
    old_head: str
    new_head: str
    saved_ref: str | None = None  # whole run: the ref that keeps the old head reachable
    reverted: str | None = None  # one task: the merge commit that was reverted
    tasks: tuple[tuple[str, str], ...] = ()  # (run, task) now marked rolled_back

    def describe(self) -> str:
        names = ", ".join(t if r == self.run_id else f"{t} (run {r})" for r, t in self.tasks)
        if self.reverted is not None:
            return (
                f"reverted {names} of run {self.run_id} on {self.branch}: revert commit "
                f"{self.new_head[:12]} undoes merge {self.reverted[:12]}; "
                "the next `conductor run` redoes it"
            )
        return (
            f"integration branch {self.branch} moved back from {self.old_head[:12]} to "
            f"{self.new_head[:12]}; rolled back: {names or 'nothing'}\n"
            f"the old head is kept at {self.saved_ref}: restore with "
            f"`git update-ref {refs.branch_ref(self.branch)} {self.old_head} {self.new_head}`"
        )


def rollback_run(ws: Workspace, store: Store, run_id: str, *, force: bool = False) -> Rollback:
    """Move the run's integration branch back to where it was before the run.

    Refused while the run (or another on the same branch) is live, when the branch is
    checked out somewhere, and, unless ``force``, when commits of later runs sit on top.
    """
    run = run_row(store, run_id)
    branch = run["integration_branch"]
    _check_quiet(ws, store, run)
    head = ws.rev(refs.branch_ref(branch))
    if head is None:
        raise UserError(f"integration branch {branch} no longer exists: nothing to roll back")
    if not any(t["merge_commit"] for t in store.tasks(run_id)):
        raise UserError(f"run {run_id} merged nothing into {branch}: nothing to roll back")
    target = _before(ws, store, run)
    dropped = ws.first_parent_log(head, target)
    if not any(c.run == run_id for c in dropped):
        raise UserError(
            f"nothing of run {run_id} is on {branch} any more",
            hint=f"was it rolled back already? see `git log --first-parent {branch}`",
        )
    later = [c for c in dropped if c.run != run_id]
    if later and not force:
        raise UserError(*_later_message(run_id, branch, later))
    saved = _save_head(ws, run_id, head)
    try:
        ws.rollback_branch(branch, target, expected_head=head)
    except BranchMoved:
        ws.delete_exact({saved: head})
        msg = f"{branch} moved while rolling back; nothing changed"
        raise UserError(msg, hint="try again") from None
    marked = _mark_dropped(store, branch, {c.sha for c in dropped})
    Emitter(store, run_id)("rolled_back", branch=branch, old_head=head, new_head=target, ref=saved)
    return Rollback(run_id, branch, head, target, saved_ref=saved, tasks=tuple(marked))


def rollback_task(ws: Workspace, store: Store, run_id: str, task_id: str) -> Rollback:
    """Revert one task's merge on the integration branch with a revert commit."""
    run = run_row(store, run_id)
    branch = run["integration_branch"]
    merge = _merged_task(store, run, task_id)
    _check_quiet(ws, store, run)
    if not ws.is_merged(branch, merge):
        raise UserError(
            f"the merge of {task_id} ({merge[:12]}) is no longer on {branch}",
            hint="the run (or one before it) was rolled back already",
        )
    trailers = {"Conductor-Run": run_id, "Conductor-Task": task_id, "Conductor-Revert": merge}
    subject = f"conductor: revert {task_id} of run {run_id}"
    try:
        new = ws.revert_merge(branch, merge, subject, trailers)
    except MergeConflict as exc:
        raise UserError(
            f"cannot revert {task_id} cleanly: later changes to {', '.join(exc.paths)} build on it",
            hint=f"roll back later work first, or the whole run (`conductor rollback {run_id}`)",
        ) from None
    store.update_task(run_id, task_id, state="rolled_back")
    Emitter(store, run_id)("rolled_back", task_id, merge_commit=merge, revert_commit=new)
    old = ws.rev(f"{new}^1") or ""
    return Rollback(run_id, branch, old, new, reverted=merge, tasks=((run_id, task_id),))


def _merged_task(store: Store, run: RunRow, task_id: str) -> str:
    """The merge commit of ``task_id`` in ``run``, or a UserError saying why there is none."""
    task = store.task(run["id"], task_id)
    if task is None:
        known = [t["task_id"] for t in store.tasks(run["id"])]
        from conductor.spec.suggest import closest

        near = closest(task_id, known)
        hint = f"did you mean `{near}`?" if near else "tasks: " + ", ".join(known[:20])
        raise UserError(f"run {run['id']} has no task `{task_id}`", hint)
    if task["state"] == "rolled_back":
        raise UserError(f"task {task_id} of run {run['id']} is rolled back already")
    if not task["merge_commit"]:
        prior = store.last_success(run["name"], task_id)
        msg = f"task {task_id} was not merged in run {run['id']} (it is {task['state']})"
        raise UserError(msg, f"it was merged by run {prior['run_id']}" if prior else None)
    return str(task["merge_commit"])


def _check_quiet(ws: Workspace, store: Store, run: RunRow) -> None:
    """Refuse while a runner may move the branch, or while a worktree has it checked out."""
    branch = run["integration_branch"]
    if may_be_live(ws.state_dir, run):
        raise UserError(
            f"run {run['id']} is still running",
            hint=f"wait for it to end, or `conductor cancel {run['id']}` first",
        )
    for other in store.runs(limit=-1):
        if other["integration_branch"] == branch and may_be_live(ws.state_dir, other):
            raise UserError(
                f"run {other['id']} is running on {branch}",
                hint=f"wait for it to end, or `conductor cancel {other['id']}` first",
            )
    for path, checked_out in ws.list_worktrees():
        if checked_out == branch:
            raise UserError(
                f"{branch} is checked out at {path}",
                hint="switch that worktree to another branch first: conductor never moves "
                "a branch under someone's files",
            )


def _before(ws: Workspace, store: Store, run: RunRow) -> str:
    """Where the integration branch stood when the run started."""
    if run["base_commit"]:
        return str(run["base_commit"])
    # Not recorded (a crash right after the run row was written): the first parent of the
    # run's first merge is the same commit, and deleting the branch could lose older runs.
    merged = [t for t in store.tasks(run["id"]) if t["merge_commit"]]
    first = min(merged, key=lambda t: t["finished"] or 0)["merge_commit"]
    parent = ws.rev(f"{first}^1")
    if parent is None:
        raise UserError(f"cannot tell where {run['integration_branch']} was before {run['id']}")
    return parent


def _later_message(run_id: str, branch: str, later: list[LoggedCommit]) -> tuple[str, str]:
    by_run = Counter(c.run for c in later if c.run)
    foreign = sum(1 for c in later if not c.run)
    parts = [f"{r} ({n} commit{'s' if n > 1 else ''})" for r, n in by_run.items()]
    if foreign:
        parts.append(f"{foreign} commit{'s' if foreign > 1 else ''} not made by conductor")
    first = next((c.run for c in later if c.run), None)  # newest first
    hint = f"roll back `{first}` first, or " if first else ""
    hint += "pass --force to drop them too (the current head is kept at a ref)"
    return f"later work sits on top of run {run_id} on {branch}: " + ", ".join(parts), hint


def _save_head(ws: Workspace, run_id: str, head: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    ref, n = refs.rollback_ref(run_id, stamp), 1
    while ws.rev(ref) is not None:  # two rollbacks within a second
        n += 1
        ref = refs.rollback_ref(run_id, stamp, n)
    ws.set_ref(ref, head)
    return ref


def _mark_dropped(store: Store, branch: str, dropped: set[str]) -> list[tuple[str, str]]:
    """Mark every succeeded task (of any run on ``branch``) whose merge left it."""
    marked = []
    for run in store.runs(limit=-1):
        if run["integration_branch"] != branch:
            continue
        for t in store.tasks(run["id"]):
            if t["state"] == "succeeded" and t["merge_commit"] in dropped:
                store.update_task(run["id"], t["task_id"], state="rolled_back")
                emit = Emitter(store, run["id"])
                emit("rolled_back", t["task_id"], merge_commit=t["merge_commit"])
                marked.append((run["id"], t["task_id"]))
    return marked
