"""The markdown execution log, rendered from the store alone.

Written atomically (temp file + rename) so a reader never sees half a log.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from conductor.model import Workflow
from conductor.store import Row, Store
from conductor.workspace import Workspace

ICON = {
    "succeeded": "✅",
    "failed": "❌",
    "blocked": "⛔",
    "skipped": "⏭️",
    "cancelled": "🚫",
    "interrupted": "⏸️",
    "running": "🔄",
    "pending": "⏳",
    "retrying": "🔁",
}


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "–"


def _short(sha: str | None) -> str:
    return f"`{sha[:10]}`" if sha else "–"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(store: Store, run_id: str, wf: Workflow) -> str:
    run = store.run(run_id)
    assert run is not None
    tasks = store.tasks(run_id)
    attempts = store.attempts(run_id)
    by_task: dict[str, list[Row]] = {}
    for a in attempts:
        by_task.setdefault(a["task_id"], []).append(a)
    parts = [_header(run, tasks, wf), _graph(wf, tasks), _table(tasks, by_task)]
    parts.append(_failures(tasks, by_task))
    parts.append(_alerts(store, run_id))
    return "\n".join(p for p in parts if p)


def _header(run: Row, tasks: list[Row], wf: Workflow) -> str:
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    cost = sum(t["cost_usd"] or 0 for t in tasks)
    dur = (run["finished"] or time.time()) - run["started"]
    lines = [
        f"# Execution log: {wf.name}",
        "",
        f"{wf.description}".strip(),
        "",
        "| | |",
        "|---|---|",
        f"| Run | `{run['id']}` |",
        f"| Outcome | {ICON.get(run['state'], '')} **{run['state']}** |",
        f"| Workflow | `{run['workflow']}` |",
        f"| Integration branch | `{run['integration_branch']}` |",
        f"| Base commit | {_short(run['base_commit'])} |",
        f"| Started | {_when(run['started'])} |",
        f"| Duration | {fmt_duration(dur)} |",
        "| Tasks | " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + " |",
    ]
    if cost:
        lines.append(f"| Cost | ${cost:.2f} |")
    return "\n".join(lines) + "\n"


def _graph(wf: Workflow, tasks: list[Row]) -> str:
    from conductor.graphs import to_mermaid

    states = {t["task_id"]: t["state"] for t in tasks}
    chart = to_mermaid(wf, states=states, selected=list(states))
    return f"## Graph\n\n```mermaid\n{chart.rstrip()}\n```\n"


def _table(tasks: list[Row], by_task: dict[str, list[Row]]) -> str:
    head = (
        "| Task | Group | Agent | State | Attempts | Duration | Base | Result | Files "
        "| Checks | Error |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for t in tasks:
        atts = by_task.get(t["task_id"], [])
        last = atts[-1] if atts else {}
        dur = (t["finished"] - t["started"]) if t["finished"] and t["started"] else None
        rows.append(
            "| "
            + " | ".join(
                _cell(c)
                for c in (
                    f"**{t['task_id']}**",
                    t["group_id"] or "–",
                    t["agent"] or "–",
                    f"{ICON.get(t['state'], '')} {t['state']}",
                    t["attempts"],
                    fmt_duration(dur),
                    _short(last.get("pre_commit")),
                    _short(t["result_commit"] or last.get("post_commit")),
                    _files(last),
                    _checks(last),
                    (t["error"] or "")[:120],
                )
            )
            + " |"
        )
    return "## Tasks\n\n" + "\n".join(rows) + "\n"


def _files(att: Row) -> str:
    if not att or att.get("files_changed") is None:
        return "–"
    return f"{att['files_changed']} (+{att['insertions']} −{att['deletions']})"


def _checks(att: Row) -> str:
    if not att or not att.get("checks"):
        return "–"
    results = json.loads(att["checks"])
    ok = sum(1 for r in results if r["ok"])
    return f"{ok}/{len(results)} passed"


def _failures(tasks: list[Row], by_task: dict[str, list[Row]]) -> str:
    out = []
    for t in tasks:
        failed = [a for a in by_task.get(t["task_id"], []) if a["state"] != "succeeded"]
        if not failed:
            continue
        out.append(f"### {t['task_id']}: {t['state']}\n")
        for a in failed:
            out.append(f"- attempt {a['n']}: {a['error'] or a['state']}")
            for r in json.loads(a["checks"] or "[]"):
                if not r["ok"]:
                    out.append(f"\n  ```text\n  {r['name']}\n{_indent(r['output'][-2000:])}\n  ```")
        out.append("")
    return "## Failures and retries\n\n" + "\n".join(out) if out else ""


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _alerts(store: Store, run_id: str) -> str:
    rows = store.events(run_id, levels=("warning", "error"))
    if not rows:
        return ""
    lines = ["## Alerts\n"]
    for e in rows[-50:]:
        what = e["data"].get("error") or e["data"].get("warning") or e["data"].get("cause") or ""
        lines.append(f"- {_when(e['ts'])} `{e['kind']}` {e['task_id'] or ''} {_cell(what)}")
    return "\n".join(lines) + "\n"


def log_path(ws: Workspace, wf: Workflow, run_id: str) -> Path:
    if wf.log:
        return ws.root / wf.log
    return ws.state_dir / "runs" / run_id / "EXECUTION_LOG.md"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_log(store: Store, run_id: str, wf: Workflow, ws: Workspace) -> Path:
    path = log_path(ws, wf, run_id)
    write_atomic(path, render(store, run_id, wf))
    return path
