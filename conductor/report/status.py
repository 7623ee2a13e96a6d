"""The status document: where a run stands, as `status --json` promises it (README).

The one builder of that shape: `status`, `runs`, `watch` and the live tables all read it,
so a field added here reaches every one of them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from conductor.report.failure import failures_by_task
from conductor.report.gaterows import GATE_KINDS, gate_rows
from conductor.report.poolreport import pools_doc
from conductor.report.spend import groups_doc, spend_doc, total
from conductor.state.endings import count_states
from conductor.state.layout import find_state_db
from conductor.state.liveness import shown_state, shown_task_state
from conductor.state.records import RunRow, Spend, TaskRow
from conductor.state.states import TASK_SETTLED
from conductor.state.store import Store
from conductor.state.values import task_outputs


def elapsed(row: Mapping[str, Any]) -> float | None:
    """Seconds from start to finish (to now while it runs); None before it started."""
    if not row.get("started"):
        return None
    return float((row.get("finished") or time.time()) - row["started"])


def run_doc(
    store: Store,
    run: RunRow,
    tasks: list[TaskRow] | None = None,
    spend: dict[str, Spend] | None = None,
) -> dict[str, Any]:
    """The `run` object of the status document (also what `runs --json` lists)."""
    shown = shown_state(store.path.parent, run)
    tasks = _as_shown(shown, store.tasks(run["id"]) if tasks is None else tasks)
    spent = total(store.spend(run["id"]) if spend is None else spend)
    return {
        "id": run["id"],
        "state": shown,
        "workflow": run["workflow"],
        "name": run["name"],
        "started": run["started"],
        "finished": run["finished"],
        "elapsed_s": elapsed(run),
        "integration_branch": run["integration_branch"],
        "base_commit": run["base_commit"],
        "counts": _counts(tasks),
        # held before their merge: the run is not over until someone decides
        "awaiting_approval": [t["task_id"] for t in tasks if t["state"] == "awaiting_approval"],
        # of the skipped: those whose work an earlier run did (`runs` names them apart)
        "up_to_date": sum(1 for t in tasks if _was_up_to_date(t)),
        **spend_doc(spent),  # the run's totals: every attempt of every task
    }


def _was_up_to_date(t: TaskRow) -> bool:
    return t["state"] == "skipped" and (t["error"] or "").startswith("up to date")


def _as_shown(run_shown: str, tasks: list[TaskRow]) -> list[TaskRow]:
    """Tasks as `status` shows them: none `running` once its runner is gone."""
    return [cast("TaskRow", {**t, "state": shown_task_state(run_shown, t["state"])})
            for t in tasks]  # fmt: skip


def _counts(tasks: list[TaskRow]) -> dict[str, int]:
    # the store's states: a skipped (up-to-date) task stays apart from a succeeded one
    return count_states(t["state"] for t in tasks)


def task_doc(
    t: TaskRow,
    spend: Spend | None = None,
    outputs: dict[str, str] | None = None,
    failure: list[str] | None = None,
) -> dict[str, Any]:
    settled = t["state"] in TASK_SETTLED  # a finished task's progress text is stale
    return {
        "id": t["task_id"],
        "state": t["state"],
        "attempts": t["attempts"],
        "group": t["group_id"],
        "agent": t["agent"],
        "elapsed_s": elapsed(t),
        "progress": None if settled else t["progress"],
        "step": None if settled else t["step"],
        "error": t["error"],
        # a failed task's last meaningful lines (its failed check's output, else its log)
        "failure": failure or [],
        "merge_commit": t["merge_commit"],
        "outputs": outputs or {},  # what it wrote to $CONDUCTOR_OUTPUT (masked)
        **spend_doc(spend or Spend()),  # summed over all its attempts, failed ones too
    }


def status_doc(store: Store, run: RunRow) -> dict[str, Any]:
    """``{"run": {...}, "tasks": [{...}], "groups": [{...}]}`` for one run."""
    tasks = _as_shown(shown_state(store.path.parent, run), store.tasks(run["id"]))
    spend = store.spend(run["id"])
    attempts = store.attempts(run["id"])
    outs = task_outputs(attempts)
    failed = failures_by_task(attempts, {t["task_id"]: t["error"] for t in tasks
                                         if t["state"] == "failed"})  # fmt: skip
    return {"run": run_doc(store, run, tasks, spend), "gates": gates_doc(store, run),
            "tasks": [task_doc(t, spend.get(t["task_id"]), outs.get(t["task_id"]),
                               failed.get(t["task_id"])) for t in tasks],
            "groups": groups_doc(tasks, spend),
            "pools": pools_doc(run, tasks, attempts)}  # fmt: skip


def gates_doc(store: Store, run: RunRow) -> list[dict[str, Any]]:
    """Each gate of the run: group, state, started, finished, duration_s, output."""
    over = shown_state(store.path.parent, run) not in ("running", "paused")
    events = store.events(run["id"], kinds=GATE_KINDS)
    return [g.doc() for g in gate_rows(events, over=over)]


def last_states(workflow_dir: Path, name: str) -> dict[str, tuple[str, str | None]]:
    """Each task's state, and why (a skip's reason, a failure), in the newest run of
    workflow ``name`` that ran it (`list`)."""
    db = find_state_db(workflow_dir)
    if db is None:
        return {}
    with Store(db) as store:
        runs = [r for r in store.runs(limit=200) if r["name"] == name]
        out: dict[str, tuple[str, str | None]] = {}
        for run in reversed(runs):
            out.update({t["task_id"]: (t["state"], t["error"]) for t in store.tasks(run["id"])})
        return out
