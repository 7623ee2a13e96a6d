"""Exporting a stored run (DESIGN §3, §4): ``export_record`` for machines,
``export_markdown`` (or the store-only ``render_from_store``) for people.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conductor.errors import ConductorError
from conductor.ops.common import run_row
from conductor.report.gaterows import GATE_KINDS, gate_rows
from conductor.report.spend import groups_doc, spend_doc, total
from conductor.state.liveness import may_be_live
from conductor.state.records import RunRow, Spend
from conductor.state.store import Store
from conductor.state.values import outputs_of

EXPORT_VERSION = 1


def export_record(store: Store, run_id: str, state_dir: Path) -> dict[str, Any]:
    """The full record of a run as one JSON-ready document (keys documented in the CLI).
    Attempts carry what their agent reported; tasks, groups and the run carry the sums over
    every attempt (failed ones too), as `status --json` shows them."""
    row = run_row(store, run_id)
    spend = store.spend(run_id)
    run: dict[str, Any] = {**row, "options": json.loads(row["options"] or "{}"),
                           "live": may_be_live(state_dir, row),
                           **spend_doc(total(spend))}  # fmt: skip
    attempts = [{**a, "checks": json.loads(a["checks"]) if a["checks"] else None,
                 "outputs": outputs_of(a) or None,
                 "changed_files": json.loads(a["changed_files"]) if a["changed_files"] else None}
                for a in store.attempts(run_id)]  # fmt: skip
    tasks = store.tasks(run_id)
    return {
        "format": "conductor-run",
        "version": EXPORT_VERSION,
        "run": run,
        "tasks": [{**t, **spend_doc(spend.get(t["task_id"], Spend()))} for t in tasks],
        "groups": groups_doc(tasks, spend),
        # each group's gate: state, started, finished, duration_s, output (when it failed)
        "gates": [g.doc() for g in gate_rows(store.events(run_id, kinds=GATE_KINDS),
                                             over=row["state"] != "running")],
        "attempts": attempts,
        "events": store.events(run_id),
    }


def export_markdown(store: Store, run_id: str, root: Path) -> str:
    """The execution log; a store-only rendering when the workflow file no longer fits."""
    run = run_row(store, run_id)
    wf = _workflow_of(root, run, (t["task_id"] for t in store.tasks(run_id)))
    if wf is not None:
        from conductor.report.log import render

        return render(store, run_id, wf)
    return render_from_store(store, run_id)


def _workflow_of(root: Path, run: RunRow, tasks: Iterable[str]) -> Any:
    """The run's workflow, or None when it no longer loads or no longer holds its tasks."""
    from conductor.spec.load import load_workflow

    try:
        wf = load_workflow(root / run["workflow"])
    except (ConductorError, OSError):
        return None
    if wf.name != run["name"] or any(t not in wf.tasks for t in tasks):
        return None
    return wf


def render_from_store(store: Store, run_id: str) -> str:
    """A header and the task table from the store alone (no workflow needed)."""
    from conductor.report.rundata import fmt_duration

    run = run_row(store, run_id)
    tasks = store.tasks(run_id)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(Counter(t["state"] for t in tasks).items()))
    elapsed = (run["finished"] or time.time()) - run["started"]
    lines = [
        f"# Execution log: {run['name']}\n",
        "_Rendered from the state store: the workflow file no longer matches this run._\n",
        f"Run `{run['id']}` of `{run['workflow']}`: **{run['state']}**, started "
        f"{_when(run['started'])}, took {fmt_duration(elapsed)} on `{run['integration_branch']}`"
        f" from {_short(run['base_commit'])}; {counts}.\n",
        "## Tasks\n",
        "| Task | Group | Agent | State | Attempts | Duration | Merge | Error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in tasks:
        dur = t["finished"] - t["started"] if t["finished"] and t["started"] else None
        cells: tuple[object, ...] = (
            *(f"**{t['task_id']}**", t["group_id"] or "–", t["agent"] or "–", t["state"]),
            *(
                t["attempts"],
                fmt_duration(dur),
                _short(t["merge_commit"]),
                (t["error"] or "")[:120],
            ),
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _short(sha: str | None) -> str:
    return f"`{sha[:10]}`" if sha else "–"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "–"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
