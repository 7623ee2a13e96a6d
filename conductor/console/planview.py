"""`conductor plan` and `conductor list` as tables that fit the terminal.

`plan`: a summary (tasks, waves, effort, makespan, the critical path), then one row per
task with its wave, title, role, agent, estimate and whether it is up to date; what the
selection needs from outside it, once. `list`: one row per task with its group, agent,
dependencies and last known state. A fan-out task's expansions sit under its id.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from conductor.console.cells import estimate, state_cell
from conductor.console.columns import Cell, Col, Line, fit
from conductor.spec.fanout import by_template, collapse, note, suffix

if TYPE_CHECKING:
    from conductor.plan.planner import Plan
    from conductor.spec.model import Workflow

PLAN_COLS = (
    Col("WAVE", ">"),
    Col("TASK", shrink=True, least=20),
    Col("TITLE", shrink=True, least=30),
    Col("ROLE", shrink=True, least=8, drop=2),
    Col("AGENT", shrink=True, least=6, drop=1),
    Col("POOL", shrink=True, least=6, drop=3),
    Col("EST", ">"),
    Col("STATE", shrink=True, least=10),
)


def _rows_of(wf: Workflow, ids: Sequence[str]) -> list[tuple[str, str | None]]:
    """(shown id, task id) rows: a fan-out task's heading (task id None), expansions under it."""
    rows: list[tuple[str, str | None]] = []
    for template, tids in by_template(wf, ids):
        if template is None:
            rows.append((tids[0], tids[0]))
        else:
            rows.append((template, None))
            rows += [(f"  {suffix(t, template)}", t) for t in tids]
    return rows


def _heading(wf: Workflow, template: str, ids: Sequence[str]) -> str:
    return f"({note(wf, template, [t for t in ids if wf.tasks[t].template == template])})"


def summary(plan: Plan, width: int) -> list[str]:
    """The lines above the table: size, effort, makespan, critical path."""
    n, w = len(plan.selected), len(plan.waves)
    head = f"{plan.workflow.name}: {n} task{'s' * (n != 1)} in {w} wave{'s' * (w != 1)}"
    if not plan.effort_hours:  # nothing estimated: no figures to give
        path = " → ".join(plan.critical_path)
        return [head + " (no estimates)",
                *textwrap.wrap(f"longest chain: {path}", width, subsequent_indent="  ",
                               break_on_hyphens=False)]  # fmt: skip
    lines = [head + f" · effort {estimate(plan.effort_hours * 3600)}",
             f"makespan at concurrency {plan.concurrency}: "
             f"{estimate(plan.makespan_waves_hours * 3600)} in waves, "
             f"{estimate(plan.makespan_eager_hours * 3600)} eager"]  # fmt: skip
    if plan.critical_path:
        path = " → ".join(plan.critical_path)
        text = f"critical path ({estimate(plan.critical_hours * 3600)}): {path}"
        lines += textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False)
    if plan.unestimated:
        few = len(plan.unestimated) <= 5
        who = ", ".join(plan.unestimated) if few else f"{len(plan.unestimated)} tasks"
        verb = "has" if len(plan.unestimated) == 1 else "have"
        lines.append(f"{who} {verb} no estimate (counted as 0)")
    return lines + textwrap.wrap(pools_line(plan), width, subsequent_indent="  ")


def pools_line(plan: Plan) -> str:
    """``pools: local 4 slots (3 tasks) · gpu 1 slot, ray, $5 quota (1 task)``, when the
    workflow has more than the default pool."""
    wf = plan.workflow
    if len(wf.pools) <= 1:
        return ""
    used: dict[str, int] = {}
    for t in plan.selected:
        used[wf.tasks[t].pool] = used.get(wf.tasks[t].pool, 0) + 1
    parts = []
    for name in dict.fromkeys([*wf.pools, *used]):
        p = wf.pool(name)
        n, k = p.cap(plan.concurrency), used.get(name, 0)
        bits = [f"{n} slot{'s' * (n != 1)}"] + ([p.executor] if p.executor != "local" else [])
        bits += [f"${p.usd:g} quota"] if p.usd is not None else []
        parts.append(f"{name} {', '.join(bits)} ({k} task{'s' * (k != 1)})")
    return "pools: " + " · ".join(parts)


def plan_lines(
    plan: Plan, skips: Mapping[str, str], outside_done: Sequence[str], width: int
) -> list[Line]:
    """The whole `plan` output: summary, table, and what the selection needs."""
    wf = plan.workflow
    pools = any(wf.tasks[t].pool != "local" for t in plan.selected)
    states = any(t in skips for t in plan.selected)  # a column only when something says
    cols = [c for c in PLAN_COLS if (pools or c.header != "POOL")
            and (states or c.header != "STATE")]  # fmt: skip
    rows: list[list[Cell]] = []
    for i, wave in enumerate(plan.waves, 1):
        for n, (shown, tid) in enumerate(_rows_of(wf, wave)):
            first = str(i) if n == 0 else ""
            if tid is None:
                rows.append([first, (shown, "bold"), _heading(wf, shown, wave)])
                continue
            t = wf.tasks[tid]
            row: list[Cell] = [first, shown, t.title, t.role or "", t.agent]
            row += [t.pool] if pools else []
            row.append(estimate(t.estimate_s) if plan.effort_hours else "")
            row += [state_cell("skipped", skips[tid]) if tid in skips else ""] if states else []
            rows.append(row)
    out: list[Line] = [[(s, "")] for s in summary(plan, width)] + [[("", "")]]
    out += fit(cols, rows, width)
    return out + [[(s, "dim")] for s in needs(plan, outside_done, width)]


def needs(plan: Plan, outside_done: Sequence[str], width: int) -> list[str]:
    """One note on what the selection needs from outside it and is not done yet."""
    needed = dict.fromkeys(d for ds in plan.external_deps.values() for d in ds)
    missing = [d for d in needed if d not in outside_done]
    if not missing:
        return []
    text = (f"needs, from outside the selection, {', '.join(missing)} done first "
            "(or add --with-deps)")  # fmt: skip
    return ["", *textwrap.wrap(text, width, subsequent_indent="  ", break_on_hyphens=False)]


LIST_COLS = (
    Col("TASK", shrink=True, least=20),
    Col("TITLE", shrink=True, least=30),
    Col("GROUP", shrink=True, least=6, drop=2),
    Col("AGENT", shrink=True, least=6, drop=1),
    Col("DEPENDS ON", shrink=True, least=14, drop=3),
    Col("STATE", shrink=True, least=10),
)


def list_lines(wf: Workflow, rows: Sequence[Mapping[str, Any]], width: int) -> list[Line]:
    """`list`: a row per task (the `list --json` rows), fan-out under its id."""
    by_id = {r["id"]: r for r in rows}
    cells: list[list[Cell]] = []
    for shown, tid in _rows_of(wf, list(by_id)):
        if tid is None:
            cells.append([(shown, "bold"), _heading(wf, shown, list(by_id))])
            continue
        r = by_id[tid]
        deps = ", ".join(collapse(wf, r["depends_on"])) or "–"
        state = state_cell(r["state"], r.get("reason")) if r["state"] != "never run" else (
            "never run", "dim")  # fmt: skip
        cells.append([shown, r["title"], r["group"] or "", r["agent"], deps, state])
    return fit(LIST_COLS, cells, width)
