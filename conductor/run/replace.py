"""Re-runs replace: before a task runs again, its earlier result leaves the branch.

When a run is about to redo tasks whose earlier results are live on the integration
branch (their definition changed, `--force`, `--from`, a dependency re-ran), those merges
are reverted — newest first, as one commit carrying `Conductor-Run`, `Conductor-Replaces`
and `Conductor-Revert` trailers — before anything starts. So the branch ends up holding
each task's current result exactly once, and dependents build on the new one. When an
earlier result cannot be taken out cleanly because later work that is not re-running
changed the same lines, the run is refused before anything changed.
"""

from __future__ import annotations

from collections.abc import Collection

from conductor.errors import MergeConflict, UserError
from conductor.git.workspace import Workspace
from conductor.spec.model import Workflow
from conductor.state.events import Emitter
from conductor.state.store import Store


def take_out_earlier(
    ws: Workspace,
    store: Store,
    wf: Workflow,
    run_id: str,
    to_run: Collection[str],
    log: list[tuple[str, str]],
) -> str | None:
    """Revert the live earlier results of ``to_run`` on the integration branch in one
    commit; return it (None when there was nothing to take out). ``log`` is the branch's
    live merge log, read once for the up-to-date checks too."""
    branch = wf.integration_branch
    doomed = [(task, sha) for task, sha in log if task in to_run]
    if not doomed:
        return None
    tasks = sorted({task for task, _ in doomed})
    shas = [sha for _, sha in doomed]
    trailers = {"Conductor-Run": run_id, "Conductor-Replaces": " ".join(tasks),
                "Conductor-Revert": " ".join(shas)}  # fmt: skip
    subject = f"conductor: take out {', '.join(tasks)} for run {run_id} to redo"
    try:
        commit = ws.revert_merges(branch, shas, subject, trailers)
    except MergeConflict as exc:
        raise _refusal(log, doomed, to_run, branch, exc.paths) from None
    Emitter(store, run_id)("results_replaced", None, tasks=tasks, reverted=shas, commit=commit)
    return commit


def _refusal(
    log: list[tuple[str, str]],
    doomed: list[tuple[str, str]],
    to_run: Collection[str],
    branch: str,
    paths: list[str],
) -> UserError:
    oldest = log.index(doomed[-1])
    later = sorted({task for task, _ in log[:oldest] if task not in to_run})
    names = ", ".join(sorted({task for task, _ in doomed}))
    what = f"later work of {', '.join(later)} " if later else "later work "
    hint = (f"redo that work too (`conductor run WORKFLOW --from {later[0]}`), or roll it "
            f"back first (`conductor rollback RUN --task {later[0]}`)") if later else (
            "roll the later work back first (`conductor rollback RUN`)")  # fmt: skip
    return UserError(
        f"cannot take the earlier result of {names} out of {branch} before redoing it: "
        f"{what}changed the same lines ({', '.join(paths)})",
        hint=hint,
    )
