"""Is a task up to date? It succeeded on this workflow's integration branch with the same
spec hash (its definition, its agent profile, its prompt file's content), and that
success is the task's live result there — merged and not reverted since (a rollback of
the task, or a later run that replaced it) — so `run` skips it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from conductor.agents import profiles as agents
from conductor.errors import UserError
from conductor.git.workspace import Workspace
from conductor.plan.planner import Plan
from conductor.spec.model import Workflow
from conductor.state.layout import find_state_db
from conductor.state.records import TaskRow
from conductor.state.store import Store

Live = Mapping[str, Sequence[str]]  # task -> its live merges, newest first
UP_TO_DATE = "up to date"  # how the reason of a task skipped for being up to date begins


def up_to_date(wf: Workflow, store: Store, task_id: str, live: Live) -> str | None:
    """Why the task need not run again, or None when it must."""
    row = store.last_success(wf.name, task_id)
    if row is None or not row["merge_commit"]:
        return None
    if row["spec_hash"] != agents.spec_fingerprint(wf, wf.tasks[task_id]):
        return None
    if row["merge_commit"] not in live.get(task_id, ()):
        return None  # rolled back, or replaced by a later run's result
    return f"{UP_TO_DATE} (succeeded in run {row['run_id']})"


def was_up_to_date(row: TaskRow) -> bool:
    """A task row skipped because its work was done in an earlier run (its result is on
    the branch), as opposed to one skipped by its `when:` or its trigger rule."""
    return row["state"] == "skipped" and (row["error"] or "").startswith(UP_TO_DATE)


def skip_reasons(wf: Workflow, plan: Plan) -> dict[str, str]:
    """Which selected tasks a run would skip, and why (empty when nothing ran yet)."""
    db = find_state_db(wf.repo_start)
    if db is None:
        return {}
    try:
        ws = Workspace.discover(wf.repo_start)
    except UserError:
        return {}
    with Store(db) as store:
        return skips(wf, plan, store, ws.live_merges(wf.integration_branch))


def done_outside(wf: Workflow, plan: Plan) -> list[str]:
    """The tasks outside the selection that selected ones need and that are up to date
    (`plan` notes only the others: those a run would refuse to start without)."""
    needed = list(dict.fromkeys(d for ds in plan.external_deps.values() for d in ds))
    db = find_state_db(wf.repo_start) if needed else None
    if db is None:
        return []
    try:
        ws = Workspace.discover(wf.repo_start)
    except UserError:
        return []
    with Store(db) as store:
        live = ws.live_merges(wf.integration_branch)
        return [d for d in needed if up_to_date(wf, store, d, live) is not None]


def skips(wf: Workflow, plan: Plan, store: Store, live: Live) -> dict[str, str]:
    """The selected tasks that are up to date and whose dependencies all are too.
    ``live`` (from one `git log` of the integration branch) answers for every task."""
    out: dict[str, str] = {}
    for t in plan.selected:
        why = up_to_date(wf, store, t, live)
        # a task is only skipped if everything it depends on is skipped too
        if why and all(d in out or d not in plan.selected for d in wf.tasks[t].deps):
            out[t] = why
    return out


def check_external(wf: Workflow, plan: Plan, store: Store, live: Live) -> None:
    needed = {d for deps in plan.external_deps.values() for d in deps}
    missing = sorted(d for d in needed if up_to_date(wf, store, d, live) is None)
    if missing:
        raise UserError(
            "selected tasks depend on tasks outside the selection that are not done: "
            + ", ".join(missing),
            hint="run those first, or add --with-deps",
        )
