"""The markdown execution log, rendered from the store alone.

The runner rewrites it after every task completion, so rendering is plain string work
over four queries and a few small file tails: no git, no networkx, no rich. Written
atomically (temp file + rename) so a reader never sees half a log. Times are UTC: the
log is read by people in other places, the morning after. This module puts the document
together (``render``, and ``summary`` for a CI job) and writes it; what it reads is in
``rundata``, its sections are in ``logsections``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from conductor.report.alerts import alerts
from conductor.report.approvals import approvals_section
from conductor.report.logsections import (
    _flowchart,
    _timeline,
    failures,
    header,
    task_tables,
)
from conductor.report.mdtext import cell
from conductor.report.poolreport import pools_section
from conductor.report.rundata import ICON, RunData, load
from conductor.report.sandboxlog import sandbox_section
from conductor.report.values import outputs_section
from conductor.spec.model import Workflow
from conductor.state.layout import Layout
from conductor.state.store import Store

if TYPE_CHECKING:  # workspace pulls in the git layer; only its type is needed here
    from conductor.git.workspace import Workspace


# ------------------------------------------------------------------ the documents


def render(
    store: Store,
    run_id: str,
    wf: Workflow,
    integration_head: str | None = None,
    *,
    now: float | None = None,
) -> str:
    """The whole execution log. ``integration_head`` defaults to the run's last merge."""
    d = load(store, run_id, integration_head, now)
    parts = [
        header(d, wf),
        approvals_section(d),
        _flowchart(d, wf),
        _timeline(d, wf),
        task_tables(d, wf),
        pools_section(d, wf),
        outputs_section(d),
        _sandboxes(store, run_id, wf),
        failures(d),
        alerts(d),
    ]
    return "\n".join(p for p in parts if p)


def _sandboxes(store: Store, run_id: str, wf: Workflow) -> str:
    if not any(t.sandbox is not None for t in wf.tasks.values()):
        return ""  # no query for the runs that use no sandbox
    return sandbox_section(store.events(run_id, kinds=("task_sandbox",)))


def summary(d: RunData, wf: Workflow, log: Path | None = None) -> str:
    """The short form for a CI job summary: header, counts and the list of failures."""
    out = [header(d, wf)]
    bad = [t for t in d.tasks if t["state"] in ("failed", "blocked", "interrupted")]
    if bad:
        out += ["### Failures", ""]
        for t in bad:
            n = len(d.by_task.get(t["task_id"], []))
            why = cell(t["error"] or "", 200)
            out.append(
                f"- {ICON.get(t['state'], '')} **{t['task_id']}** {t['state']}"
                f" after {n} attempt{'s' * (n != 1)}" + (f": {why}" if why else "")
            )
        out.append("")
    if log is not None:
        out += [f"Full execution log: `{log}`", ""]
    return "\n".join(out)


def write_step_summary(
    store: Store,
    run_id: str,
    wf: Workflow,
    log: Path | None = None,
    integration_head: str | None = None,
) -> Path | None:
    """Append the summary to ``$GITHUB_STEP_SUMMARY`` when it is set; its path, or None."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    text = summary(load(store, run_id, integration_head), wf, log)
    path = Path(target)
    with path.open("a", encoding="utf-8") as fh:  # appended: other steps write there too
        fh.write(text.rstrip() + "\n\n")
    return path


def log_path(ws: Workspace, wf: Workflow, run_id: str) -> Path:
    """`log:` of the workflow (`{run}` is the run id), else the run's own directory."""
    if wf.log:
        return ws.root / wf.log.replace("{run}", run_id)
    return Layout(ws.state_dir).execution_log(run_id)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the log is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_log(
    store: Store,
    run_id: str,
    wf: Workflow,
    ws: Workspace,
    integration_head: str | None = None,
) -> Path:
    path = log_path(ws, wf, run_id)
    write_atomic(path, render(store, run_id, wf, integration_head))
    return path
