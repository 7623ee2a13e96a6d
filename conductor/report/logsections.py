"""The sections of the markdown execution log, each rendered from the loaded run.

The header table, the mermaid graph and timeline, the task tables (by group, else by
wave), the failures with their validator output and agent log tails, and the alerts.
Output of agents and validators is cleaned and fenced (``mdtext``) and cut to its last
lines, and alerts are capped, so that one noisy task cannot swamp the log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from conductor.report.failure import gate_lines
from conductor.report.fanlog import rows_under_templates
from conductor.report.mdtext import (
    cell,
    clean,
    fence,
    para,
    row,
    short,
    tail_file,
    tail_lines,
    when,
)
from conductor.report.rundata import ICON, RunData, fmt_duration, fmt_usd
from conductor.report.spend import per_group, per_task, spend_text, tokens_text, total
from conductor.spec.model import Workflow
from conductor.state.endings import count_states, settled_conflicts
from conductor.state.records import AttemptRow, Spend, TaskRow

LOG_TAIL_LINES = 30
CHECK_TAIL_LINES = 40


# ------------------------------------------------------------------ header


def shown(t: TaskRow) -> str:
    """A task's state as people name it: one skipped because an earlier run did its work
    is `up to date`, apart from one skipped by its `when:` or trigger rule."""
    up = t["state"] == "skipped" and (t["error"] or "").startswith("up to date (")
    return "up to date" if up else t["state"]


def told(tasks: Iterable[TaskRow]) -> dict[str, int]:
    """The counts as the log tells them: each state apart, `up to date` after succeeded."""
    tasks = list(tasks)
    fresh = sum(1 for t in tasks if shown(t) == "up to date")
    out: dict[str, int] = {}
    for s, n in count_states(t["state"] for t in tasks).items():
        if s == "skipped" and fresh:
            out["up to date"] = fresh
            out.update({"skipped": n - fresh} if n > fresh else {})
        else:
            out[s] = n
    return out


def _outcome(d: RunData) -> str:
    """The one-line verdict, each state counted apart (skipped is not succeeded), then
    every merge conflict a retry settled: whose change the task was redone on top of."""
    state = d.run["state"]
    end = d.run["finished"] or d.now
    counts = ", ".join(f"{n} {s}" for s, n in told(d.tasks).items()) or "no tasks"
    lines = [f"> {ICON.get(state, '')} **{state}** after "
             f"{fmt_duration(end - d.run['started'])}: {counts}"]  # fmt: skip
    states = {t["task_id"]: t["state"] for t in d.tasks}
    settled = settled_conflicts(d.alerts, states)  # conflict events are warnings
    if settled:
        lines += [">", *(f"> - {cell(s.text(), 300)}" for s in settled)]
    return "\n".join(lines)


def _cost_rows(d: RunData) -> list[tuple[str, str]]:
    """The run's totals over every attempt, failed ones too."""
    s = total(per_task(d.attempts))
    rows = []
    if s.cost_usd is not None:
        n = sum(1 for a in d.attempts if a["cost_usd"] is not None)
        of = f"{n} of {len(d.attempts)} attempts reported one"
        rows.append(("Cost", f"{fmt_usd(s.cost_usd)} ({of})"))
    if s.tokens_in or s.tokens_out:
        rows.append(("Tokens", tokens_text(s)))
    if s.turns is not None:
        rows.append(("Turns", f"{s.turns:,}"))
    if s.models:
        rows.append(("Models", cell(", ".join(s.models), 200)))
    return rows


def _attempts_text(n: int, retries: int) -> str:
    """``7 (1 retry)``, ``7 (2 retries)``, or ``6`` when nothing was retried."""
    if not retries:
        return str(n)
    return f"{n} ({retries} {'retry' if retries == 1 else 'retries'})"


def header(d: RunData, wf: Workflow) -> str:
    run, icon = d.run, ICON.get(d.run["state"], "")
    counts = " · ".join(f"{n} {s}" for s, n in told(d.tasks).items())
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
        ("Attempts", _attempts_text(len(d.attempts), retries)),
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
    chart = to_gantt(bars(d.attempts, groups, d.now, d.live, d.gates))
    note = ("Bars are attempts and group gates (red: failed, grey: interrupted); the axis is "
            "in your local time.")  # fmt: skip
    return "## Timeline\n\n" + fence(chart, "mermaid") + f"\n\n{note}\n"


# ------------------------------------------------------------------ task tables


def waves(wf: Workflow, task_ids: Iterable[str]) -> dict[str, int]:
    """1-based topological generation of each task within the run (no networkx: speed).

    One pass over tasks and edges (Kahn's order): the log is rendered again while a run
    goes, so this must not cost tasks × waves. A task on a cycle (spec refuses those)
    or after one gets no wave."""
    ids = [t for t in task_ids if t in wf.tasks]
    inside = set(ids)
    deps = {t: [p for p in wf.tasks[t].deps if p in inside] for t in ids}
    waiting = {t: len(ps) for t, ps in deps.items()}  # dependencies without a wave yet
    after: dict[str, list[str]] = {t: [] for t in ids}
    for t, ps in deps.items():
        for p in ps:
            after[p].append(t)
    wave: dict[str, int] = {}
    todo = [t for t in ids if not waiting[t]]
    while todo:
        t = todo.pop()
        wave[t] = 1 + max((wave[p] for p in deps[t]), default=0)
        for k in after[t]:
            waiting[k] -= 1
            if not waiting[k]:
                todo.append(k)
    return wave


def _diffstat(att: AttemptRow | None) -> str:
    if not att or att["files_changed"] is None:
        return "–"
    n = att["files_changed"]
    return f"+{att['insertions'] or 0} −{att['deletions'] or 0} ({n} file{'s' * (n != 1)})"


def _spend_cells(s: Spend) -> list[str]:
    """Cost, tokens and turns of one task, over all its attempts."""
    return [fmt_usd(s.cost_usd) if s.cost_usd is not None else "–", tokens_text(s) or "–",
            f"{s.turns:,}" if s.turns is not None else "–"]  # fmt: skip


def _task_row(
    d: RunData, wf: Workflow, t: TaskRow, wave: int | None, spend: dict[str, Spend] | None
) -> str:
    spec = wf.tasks.get(t["task_id"])
    atts = d.by_task.get(t["task_id"], [])
    last = atts[-1] if atts else None
    cells = [
        f"**{t['task_id']}**",
        cell(spec.title, 80) if spec and spec.title else "–",
        cell(spec.role, 40) if spec and spec.role else "–",
        cell(t["agent"] or "–"),
        f"{ICON.get(shown(t), '')} {shown(t)}",
        str(wave or "–"),
        str(len(atts)),
        fmt_duration(d.task_span(t["task_id"])),
        _diffstat(last),
        short(t["result_commit"] or (last["post_commit"] if last else None)),
    ]
    if spend is not None:
        cells += _spend_cells(spend.get(t["task_id"], Spend()))
    why = t["error"] or ""
    if shown(t) == "up to date":  # its state says that much: the run that did the work
        why = "from run " + why.removeprefix("up to date (succeeded in run ").rstrip(")")
    cells.append(cell(why, 100) if why else "")
    return row(cells)


def _section_title(wf: Workflow, gid: str | None, rows: list[TaskRow], d: RunData) -> str:
    counts: dict[str, int] = {}
    for t in rows:
        counts[shown(t)] = counts.get(shown(t), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    if gid is None:
        return f"### Ungrouped tasks ({summary})"
    group = wf.groups.get(gid)
    desc = f": {cell(group.description, 80)}" if group and group.description else ""
    gate = next((g for g in d.gates if g.group == gid), None)
    said = f"; gate {ICON.get(gate.state, '⏳')} {gate.state}" if gate else ""
    return f"### {gid}{desc} ({summary}{said})"


def _gate_row(d: RunData, wf: Workflow, gid: str, ncols: int) -> str | None:
    """A group's gate as a row of its table: its checks, state, duration, what failed."""
    gate = next((g for g in d.gates if g.group == gid), None)
    group = wf.groups.get(gid)
    if gate is None or group is None:
        return None
    checks = [v.describe() for v in group.validate]
    what = f"{len(checks)} check{'s' * (len(checks) != 1)}: " + ", ".join(f"`{c}`" for c in checks)
    said = gate_lines(gate.output)[-1:]
    cells = ["**gate**", cell(what, 120), "–", "–", f"{ICON.get(gate.state, '⏳')} {gate.state}",
             "–", "–", fmt_duration(gate.duration_s)]  # fmt: skip
    cells += ["–"] * (ncols - len(cells) - 1)
    return row([*cells, cell(said[0], 100) if said and gate.state == "failed" else ""])


def _total_line(what: str, s: Spend) -> list[str]:
    text = spend_text(s)
    return [f"**{what}:** {cell(text)}", ""] if text else []


def task_tables(d: RunData, wf: Workflow) -> str:
    wave = waves(wf, (t["task_id"] for t in d.tasks))
    by_task = per_task(d.attempts)
    spend = by_task if by_task else None  # the spend columns only once some agent reported
    cols = ["Task", "Title", "Role", "Agent", "State", "Wave", "Attempts", "Duration"]
    # failed: the error; blocked or skipped: why it did not run
    cols += ["Diff", "Result", *(["Cost", "Tokens", "Turns"] if spend else []), "Reason"]
    head = row(cols) + "\n" + row("---" for _ in cols)
    sections: dict[str | None, list[TaskRow]] = {}
    if wf.groups or any(t["group_id"] for t in d.tasks):
        for t in d.tasks:  # groups in order of their first task: file order
            sections.setdefault(t["group_id"], []).append(t)
        titles = {g: _section_title(wf, g, rows, d) for g, rows in sections.items()}
    else:  # no groups: one table per wave, the unit `strategy: waves` gates on
        for t in sorted(d.tasks, key=lambda t: wave.get(t["task_id"], 0)):
            sections.setdefault(str(wave.get(t["task_id"], "?")), []).append(t)
        titles = {w: f"### Wave {w}" for w in sections}
    groups = per_group(d.tasks, by_task)
    out = ["## Tasks", ""]
    for key, rows in sections.items():
        out += [titles[key], "", head]
        out += rows_under_templates(  # a fan-out task's expansions under its id
            wf, rows, lambda t: _task_row(d, wf, t, wave.get(t["task_id"]), spend), len(cols)
        )
        gate = _gate_row(d, wf, key, len(cols)) if key is not None else None
        out += [gate] if gate else []
        out.append("")
        if key in groups:  # a group's sum (wave tables have none: a wave is no unit of cost)
            out += _total_line(f"{key} total", groups[key])
    out += _total_line("Run total", total(by_task))
    return "\n".join(out)


# ------------------------------------------------------------------ failures and alerts


def _checks(att: AttemptRow) -> list[str]:
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


def _attempt_section(att: AttemptRow) -> list[str]:
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


def _needs_section(t: TaskRow, atts: list[AttemptRow]) -> bool:
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
