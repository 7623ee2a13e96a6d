"""The markdown execution log, rendered from the store alone.

The runner rewrites it after every task completion, so rendering is plain string work
over four queries and a few small file tails: no git, no networkx, no rich. Written
atomically (temp file + rename) so a reader never sees half a log. Times are UTC: the
log is read by people in other places, the morning after.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conductor.report.mdtext import (
    cell,
    clean,
    clock,
    fence,
    para,
    row,
    short,
    tail_file,
    tail_lines,
    when,
)
from conductor.spec.model import Workflow
from conductor.state.layout import Layout
from conductor.state.store import Row, Store

if TYPE_CHECKING:  # workspace pulls in the git layer; only its type is needed here
    from conductor.git.workspace import Workspace

# In the order states are counted in: most telling first (unknown states follow).
ICON = {
    "succeeded": "✅",
    "failed": "❌",
    "blocked": "⛔",
    "cancelled": "🚫",
    "interrupted": "⏸️",
    "running": "🔄",
    "validating": "🔄",
    "merging": "🔄",
    "retrying": "🔁",
    "ready": "⏳",
    "pending": "⏳",
    "skipped": "⏭️",
}
STATE_ORDER = tuple(ICON)
LOG_TAIL_LINES = 30
CHECK_TAIL_LINES = 40
MAX_ALERTS = 100


# ------------------------------------------------------------------ small formatting


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


# ------------------------------------------------------------------ the data


@dataclass
class RunData:
    """Everything the log shows, read once from the store."""

    run: Row
    tasks: list[Row]
    attempts: list[Row]
    alerts: list[Row]
    now: float
    head: str | None
    by_task: dict[str, list[Row]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for a in sorted(self.attempts, key=lambda r: r["n"]):
            self.by_task.setdefault(a["task_id"], []).append(a)

    @property
    def live(self) -> bool:
        return bool(self.run["state"] == "running")

    def counts(self) -> dict[str, int]:
        raw: dict[str, int] = {}
        for t in self.tasks:
            raw[t["state"]] = raw.get(t["state"], 0) + 1
        known = {s: raw[s] for s in STATE_ORDER if s in raw}
        return {**known, **{s: n for s, n in sorted(raw.items()) if s not in known}}

    def task_span(self, task_id: str) -> float | None:
        """Wall time from the first attempt's start to the last one's end (or now)."""
        atts = self.by_task.get(task_id)
        if not atts:
            return None
        end = max(float(a["finished"] or self.now) for a in atts)
        return max(0.0, end - min(float(a["started"]) for a in atts))


def load(
    store: Store, run_id: str, integration_head: str | None = None, now: float | None = None
) -> RunData:
    run = store.run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id}")
    tasks = store.tasks(run_id)
    head = integration_head or _last_merge(tasks)
    return RunData(
        run,
        tasks,
        store.attempts(run_id),
        store.events(run_id, levels=("warning", "error")),
        time.time() if now is None else now,
        head,
    )


def _last_merge(tasks: list[Row]) -> str | None:
    """The integration head as far as this run knows: its newest merge."""
    merged = [t for t in tasks if t["merge_commit"]]
    if not merged:
        return None
    return str(max(merged, key=lambda t: t["finished"] or 0)["merge_commit"])


# ------------------------------------------------------------------ header


def _outcome(d: RunData) -> str:
    state = d.run["state"]
    done = sum(1 for t in d.tasks if t["state"] in ("succeeded", "skipped"))
    end = d.run["finished"] or d.now
    return (
        f"> {ICON.get(state, '')} **{state}** after {fmt_duration(end - d.run['started'])}"
        f": {done}/{len(d.tasks)} tasks done"
    )


def _cost_rows(d: RunData) -> list[tuple[str, str]]:
    costs = [a["cost_usd"] for a in d.attempts if a["cost_usd"] is not None]
    t_in = sum(a["tokens_in"] or 0 for a in d.attempts)
    t_out = sum(a["tokens_out"] or 0 for a in d.attempts)
    rows = []
    if costs:
        of = f"{len(costs)} of {len(d.attempts)} attempts reported one"
        rows.append(("Cost", f"${sum(costs):.2f} ({of})"))
    if t_in or t_out:
        rows.append(("Tokens", f"{t_in:,} in · {t_out:,} out"))
    return rows


def header(d: RunData, wf: Workflow) -> str:
    run, icon = d.run, ICON.get(d.run["state"], "")
    counts = " · ".join(f"{n} {s}" for s, n in d.counts().items())
    retries = sum(1 for a in d.attempts if a["n"] > 1)
    rows = [
        ("Workflow", f"`{wf.name}` (`{run['workflow']}`)"),
        ("Run", f"`{run['id']}`"),
        ("Outcome", f"{icon} {run['state']}"),
        ("Started", when(run["started"])),
        ("Finished", when(run["finished"]) if run["finished"] else "still running"),
        ("Duration", fmt_duration((run["finished"] or d.now) - run["started"])),
        ("Integration branch", f"`{run['integration_branch']}`"),
        ("Base commit", short(run["base_commit"])),
        ("Integration head", short(d.head)),
        ("Tasks", f"{len(d.tasks)}: {counts}" if d.tasks else "none"),
        ("Attempts", f"{len(d.attempts)} ({retries} retries)"),
        *_cost_rows(d),
        *([("Reason", cell(run["reason"], 200))] if run["reason"] else []),
        *([("Updated", when(d.now))] if d.live else []),
    ]
    lines = [f"# Execution log: {wf.name}", ""]
    if wf.description.strip():
        lines += [" ".join(wf.description.split()), ""]
    lines += [_outcome(d), "", "| | |", "|---|---|", *(row(r) for r in rows)]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ pictures


def _flowchart(d: RunData, wf: Workflow) -> str:
    from conductor.report.graphs import to_mermaid

    states = {t["task_id"]: t["state"] for t in d.tasks}
    shown = [t for t in states if t in wf.tasks]
    if not shown:
        return ""
    chart = to_mermaid(wf, states=states, selected=shown)
    return "## Graph\n\n" + fence(chart, "mermaid") + "\n"


def _timeline(d: RunData, wf: Workflow) -> str:
    from conductor.report.gantt import bars, to_gantt

    if not d.attempts:
        return "## Timeline\n\nNo attempt has started yet.\n"
    groups = {t["task_id"]: t["group_id"] for t in d.tasks}
    chart = to_gantt(bars(d.attempts, groups, d.now, d.live))
    note = "Bars are attempts (red: failed, grey: interrupted); the axis is in your local time."
    return "## Timeline\n\n" + fence(chart, "mermaid") + f"\n\n{note}\n"


# ------------------------------------------------------------------ task tables


def waves(wf: Workflow, task_ids: Iterable[str]) -> dict[str, int]:
    """1-based topological generation of each task within the run (no networkx: speed)."""
    ids = [t for t in task_ids if t in wf.tasks]
    inside = set(ids)
    deps = {t: [p for p in wf.tasks[t].deps if p in inside] for t in ids}
    wave: dict[str, int] = {}
    pending = list(ids)
    while pending:
        rest = [t for t in pending if any(p not in wave for p in deps[t])]
        if len(rest) == len(pending):  # a cycle cannot pass spec; never loop on one
            break
        for t in pending:
            if t not in rest:
                wave[t] = 1 + max((wave[p] for p in deps[t]), default=0)
        pending = rest
    return wave


def _diffstat(att: Row | None) -> str:
    if not att or att["files_changed"] is None:
        return "–"
    n = att["files_changed"]
    return f"+{att['insertions'] or 0} −{att['deletions'] or 0} ({n} file{'s' * (n != 1)})"


def _task_row(d: RunData, wf: Workflow, t: Row, wave: int | None, cost: bool) -> str:
    spec = wf.tasks.get(t["task_id"])
    atts = d.by_task.get(t["task_id"], [])
    last = atts[-1] if atts else None
    cells = [
        f"**{t['task_id']}**",
        cell(spec.title, 80) if spec and spec.title else "–",
        cell(spec.role, 40) if spec and spec.role else "–",
        cell(t["agent"] or "–"),
        f"{ICON.get(t['state'], '')} {t['state']}",
        str(wave or "–"),
        str(len(atts)),
        fmt_duration(d.task_span(t["task_id"])),
        _diffstat(last),
        short(t["result_commit"] or (last["post_commit"] if last else None)),
    ]
    if cost:
        spent = [a["cost_usd"] for a in atts if a["cost_usd"] is not None]
        cells.append(f"${sum(spent):.2f}" if spent else "–")
    cells.append(cell(t["error"], 100) if t["error"] else "")
    return row(cells)


def _section_title(wf: Workflow, gid: str | None, rows: list[Row], d: RunData) -> str:
    counts: dict[str, int] = {}
    for t in rows:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    if gid is None:
        return f"### Ungrouped tasks ({summary})"
    group = wf.groups.get(gid)
    desc = f": {cell(group.description, 80)}" if group and group.description else ""
    gate = ""
    if group and group.validate:
        failed = any(e["kind"] == "gate_failed" and e["data"].get("group") == gid for e in d.alerts)
        n = len(group.validate)
        gate = ", gate ❌ failed" if failed else f", gated by {n} check{'s' * (n != 1)}"
    return f"### {gid}{desc} ({summary}{gate})"


def task_tables(d: RunData, wf: Workflow) -> str:
    wave = waves(wf, (t["task_id"] for t in d.tasks))
    cost = any(a["cost_usd"] is not None for a in d.attempts)
    cols = ["Task", "Title", "Role", "Agent", "State", "Wave", "Attempts", "Duration"]
    cols += ["Diff", "Result", *(["Cost"] if cost else []), "Error"]
    head = row(cols) + "\n" + row("---" for _ in cols)
    sections: dict[str | None, list[Row]] = {}
    if wf.groups or any(t["group_id"] for t in d.tasks):
        for t in d.tasks:  # groups in order of their first task: file order
            sections.setdefault(t["group_id"], []).append(t)
        titles = {g: _section_title(wf, g, rows, d) for g, rows in sections.items()}
    else:  # no groups: one table per wave, the unit `strategy: waves` gates on
        for t in sorted(d.tasks, key=lambda t: wave.get(t["task_id"], 0)):
            sections.setdefault(str(wave.get(t["task_id"], "?")), []).append(t)
        titles = {w: f"### Wave {w}" for w in sections}
    out = ["## Tasks", ""]
    for key, rows in sections.items():
        out += [titles[key], "", head]
        out += [_task_row(d, wf, t, wave.get(t["task_id"]), cost) for t in rows]
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------ failures and alerts


def _checks(att: Row) -> list[str]:
    try:
        results = json.loads(att["checks"] or "[]")
    except ValueError:
        return ["Validator results unreadable."]
    out: list[str] = []
    for r in results:
        mark = "✅" if r.get("ok") else "❌"
        took = fmt_duration(r.get("duration_s"))
        name = cell(r.get("name", "?"), 100).replace("`", "'")
        if out and not out[-1].startswith("- "):
            out.append("")
        out.append(f"- {mark} `{name}` ({took})")
        if not r.get("ok") and (r.get("output") or "").strip():
            para(out, fence(tail_lines(clean(str(r["output"])), CHECK_TAIL_LINES)))
    return out


def _attempt_section(att: Row) -> list[str]:
    what = f"{ICON.get(att['state'], '')} {att['state']}"
    took = fmt_duration((att["finished"] - att["started"]) if att["finished"] else None)
    out = [f"#### Attempt {att['n']}: {what} ({took})"]
    if att["error"]:
        para(out, f"Error: {cell(att['error'], 500)}")
    checks = _checks(att)
    if checks:
        para(out, *checks)
    tail = tail_file(att["log_path"])
    if tail:
        para(out, f"<details><summary>Agent log, last {LOG_TAIL_LINES} lines</summary>")
        para(out, fence(tail), "", "</details>")
    return [*out, ""]


def _needs_section(t: Row, atts: list[Row]) -> bool:
    return t["state"] == "failed" or any(a["state"] != "succeeded" for a in atts if a["finished"])


def failures(d: RunData) -> str:
    out: list[str] = []
    for t in d.tasks:
        atts = d.by_task.get(t["task_id"], [])
        if not _needs_section(t, atts):
            continue
        n = f"{len(atts)} attempt{'s' * (len(atts) != 1)}"
        out += [f"### {ICON.get(t['state'], '')} {t['task_id']}: {t['state']} after {n}", ""]
        if t["error"] and t["state"] != "succeeded":
            out += [f"Last error: {cell(t['error'], 500)}", ""]
        for a in atts:
            out += _attempt_section(a)
    for e in d.alerts:
        if e["kind"] == "gate_failed":
            group = cell(e["data"].get("group", "?"))
            text = tail_lines(clean(str(e["data"].get("output") or "")), CHECK_TAIL_LINES)
            out += [f"### ❌ Gate of {group}", "", fence(text or "(no output)"), ""]
    return "## Failures and retries\n\n" + "\n".join(out) if out else ""


def _alert_text(kind: str, data: dict[str, Any]) -> str:
    if kind == "task_blocked" and data.get("cause"):
        return f"blocked by {data['cause']}"
    if kind == "conflict":
        return "merge conflict: " + ", ".join(map(str, data.get("paths") or []))
    if kind == "task_retrying":
        return f"attempt {data.get('attempt', '?')} failed: {data.get('error') or '?'}"
    if kind == "gate_failed":
        return f"gate of {data.get('group', '?')} failed"
    text = str(data.get("error") or data.get("warning") or data.get("message") or "")
    if data.get("idle_s") is not None:
        text += f" for {fmt_duration(float(data['idle_s']))}"
    return text or ", ".join(f"{k}={v}" for k, v in data.items())


def alerts(d: RunData) -> str:
    if not d.alerts:
        return ""
    shown = d.alerts[-MAX_ALERTS:]
    out = ["## Alerts", ""]
    if len(d.alerts) > len(shown):
        out += [f"The last {len(shown)} of {len(d.alerts)}.", ""]
    out += [row(("Time", "Level", "Event", "Task", "Message")), "|---|---|---|---|---|"]
    for e in shown:
        level = "❗ error" if e["level"] == "error" else "⚠️ warning"
        task = f"`{e['task_id']}`" if e["task_id"] else ""
        text = cell(_alert_text(e["kind"], e["data"]), 160)
        out.append(row((clock(e["ts"]), level, e["kind"], task, text)))
    return "\n".join(out) + "\n"


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
        _flowchart(d, wf),
        _timeline(d, wf),
        task_tables(d, wf),
        failures(d),
        alerts(d),
    ]
    return "\n".join(p for p in parts if p)


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
