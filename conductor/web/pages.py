"""The runs page and a run's page, from the status document and the store's rows.

Every figure comes from the readers `status` uses (``status_doc``, ``run_doc``,
``Store.spend``), so the page and `status --json` never disagree. A run page is a few
parts (header, task table, gantt) that the script fetches again as events arrive, and
the DAG, whose tasks the script recolours in place.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conductor.report.rundata import fmt_duration, fmt_usd
from conductor.report.spend import tokens_text
from conductor.report.status import run_doc, status_doc
from conductor.state.endings import counts_text
from conductor.state.liveness import is_live
from conductor.state.records import AttemptRow, RunRow, Spend
from conductor.state.store import Store
from conductor.web.charts import dag_svg, gantt_svg
from conductor.web.eta import Etas
from conductor.web.markup import badge, dl, esc, href, legend, page, short, table
from conductor.web.shape import Shape, Shapes


@dataclass
class Site:
    """What every page reads: the store (read-only), the graphs' cache, the ETAs."""

    store: Store
    shapes: Shapes
    etas: Etas = field(default_factory=Etas)

    @property
    def state_dir(self) -> Path:
        return self.store.path.parent


def _clock(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def _spend(doc: Mapping[str, Any]) -> Spend:
    return Spend(doc.get("cost_usd"), doc.get("tokens_in"), doc.get("tokens_out"),
                 doc.get("tokens_cache"), doc.get("turns"), tuple(doc.get("models") or ()))


def _cost(doc: Mapping[str, Any]) -> str:
    return fmt_usd(doc["cost_usd"]) if doc.get("cost_usd") is not None else ""


# -- the runs --------------------------------------------------------------------------


def runs_page(site: Site, token: str | None, limit: int = 100) -> str:
    rows = []
    for run in site.store.runs(limit=limit):
        doc = run_doc(site.store, run)
        link = href("/runs/" + run["id"], token)
        rows.append([
            f"<a href='{link}'>{esc(run['id'])}</a>",
            esc(run["name"]), badge(doc["state"]), esc(_clock(run["started"])),
            esc(fmt_duration(doc["elapsed_s"])), esc(counts_text(doc["counts"])),
            esc(_cost(doc)),
        ])  # fmt: skip
    body = table(["run", "workflow", "state", "started", "duration", "tasks", "cost"], rows,
                 cls="runs") if rows else "<p class=empty>no runs recorded yet</p>"  # fmt: skip
    return page("runs", f"<h1>Runs</h1>{body}", token)


# -- one run ---------------------------------------------------------------------------


def _pauses(store: Store, run_id: str, paused: Sequence[str]) -> str:
    """Each paused task with the agent's reason and when it resumes."""
    if not paused:
        return ""
    last: dict[str, dict[str, Any]] = {}
    for e in store.events(run_id, levels=("warning",)):
        tid = e["task_id"]
        if e["kind"] == "task_paused" and tid is not None and tid in paused:
            last[tid] = e["data"]
    items = []
    for tid in paused:
        d = last.get(tid, {})
        when = f" · resumes {_clock(d['resume_at'])}" if d.get("resume_at") else ""
        items.append(f"<li>{esc(tid)}: {esc(d.get('error') or 'paused')}{esc(when)}</li>")
    return f"<ul class=pauses>{''.join(items)}</ul>"


def header_part(site: Site, run: RunRow, doc: Mapping[str, Any], shape: Shape) -> str:
    r = doc["run"]
    budget = shape.budget_usd
    eta = site.etas.seconds_left(site.store, run, shape) if r["state"] == "running" else None
    tasks = doc["tasks"]
    opts = json.loads(run["options"] or "{}")
    slots = int(opts.get("concurrency") or 0)
    busy = sum(1 for t in tasks if t["state"] in ("running", "validating", "merging"))
    cost = _cost(r) or ("$0.00" if budget is not None else "none reported")
    if budget is not None:
        cost += f" of {fmt_usd(budget)} budget"
    paused = [t["id"] for t in tasks if t["state"] == "paused"]
    facts = dl([
        ("state", badge(r["state"])), ("workflow", esc(f"{r['name']} ({r['workflow']})")),
        ("started", esc(_clock(r["started"]))), ("elapsed", esc(fmt_duration(r["elapsed_s"]))),
        ("ETA", esc(f"{fmt_duration(eta)} left") if eta is not None else ""),
        ("tasks", esc(counts_text(r["counts"]))), ("cost", esc(cost)),
        ("tokens", esc(tokens_text(_spend(r)))), ("models", esc(", ".join(r["models"]))),
        ("pool local", esc(f"{busy} of {slots} slots used") if slots else ""),
        ("awaiting approval", esc(", ".join(r["awaiting_approval"]))),
        ("paused", _pauses(site.store, run["id"], paused)),
    ])  # fmt: skip
    return facts


def _checks(attempts: Sequence[AttemptRow]) -> str:
    """The last validated attempt's results: `2/3 passed`, failing names in the tooltip."""
    for a in reversed(attempts):
        results = json.loads(a["checks"] or "[]")
        if results:
            ok = sum(1 for c in results if c.get("ok"))
            bad = [str(c.get("name")) for c in results if not c.get("ok")]
            tip = f" title='failed: {esc(', '.join(bad))}'" if bad else ""
            return f"<span{tip}>{ok}/{len(results)} passed</span>"
    return ""


def tasks_part(run_id: str, doc: Mapping[str, Any], attempts: Sequence[AttemptRow],
               token: str | None) -> str:  # fmt: skip
    by_task: dict[str, list[AttemptRow]] = {}
    for a in sorted(attempts, key=lambda a: a["n"]):
        by_task.setdefault(a["task_id"], []).append(a)
    rows = []
    for t in doc["tasks"]:
        tid = t["id"]
        link = href(f"/runs/{run_id}/tasks/{tid}", token)
        rows.append([
            f"<a href='{link}'>{esc(tid)}</a>", esc(t["group"] or ""),
            badge(t["state"]), esc(t["agent"] or ""), str(t["attempts"]),
            esc(fmt_duration(t["elapsed_s"])), esc(_cost(t)), esc(tokens_text(_spend(t))),
            _checks(by_task.get(tid, [])), short(t["merge_commit"]),
            esc(t["error"] or t["step"] or ""),
        ])  # fmt: skip
    return table(["task", "group", "state", "agent", "attempts", "duration", "cost", "tokens",
                  "validators", "merge", "note"], rows, cls="tasks")  # fmt: skip


def run_parts(site: Site, run: RunRow, token: str | None) -> dict[str, Any]:
    """The parts of a run page that change as it runs, and each task's state."""
    store = site.store
    doc = status_doc(store, run)
    attempts = store.attempts(run["id"])
    groups = {t["id"]: t["group"] for t in doc["tasks"]}
    shape = site.shapes.get(run, lambda: store.tasks(run["id"]))
    live = is_live(site.state_dir, run)
    return {
        "state": doc["run"]["state"],
        "live": live,
        "tasks": {t["id"]: t["state"] for t in doc["tasks"]},
        "header": header_part(site, run, doc, shape),
        "table": tasks_part(run["id"], doc, attempts, token),
        "gantt": gantt_svg(attempts, groups, time.time(), live),
    }


def run_page(site: Site, run: RunRow, token: str | None) -> str:
    parts = run_parts(site, run, token)
    shape = site.shapes.get(run, lambda: site.store.tasks(run["id"]))
    note = f"<p class=note>{esc(shape.note)}</p>" if shape.note else ""
    body = (
        f"<h1>Run {esc(run['id'])}</h1>"
        f"<section id=header>{parts['header']}</section>"
        f"<h2>Graph</h2>{note}<div class=scroll id=dag>"
        f"{dag_svg(shape, parts['tasks'], run['id'], token)}</div>{legend()}"
        f"<h2>Timeline</h2><div class=scroll id=gantt>{parts['gantt']}</div>"
        f"<h2>Tasks</h2><div class=scroll id=tasks>{parts['table']}</div>"
        "<h2>Events</h2><ol id=events class=events></ol>"
    )
    attrs = f" data-run='{esc(run['id'])}' data-view=run"
    return page(f"run {run['id']}", body, token, attrs=attrs)
