"""`conductor status` and `conductor runs` as tables that fit the terminal.

Both render the documents `--json` prints (report/status.py): the run's line and its
counts, one row per task and one per group gate (after the group's last task), then what
failed, in the failure's own last lines. `runs`: one row per run. Plain segments
(console/columns.py): the same table goes to a pipe, a colour terminal or rich.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conductor.console.cells import duration, state_cell
from conductor.console.columns import Cell, Col, Line, fit
from conductor.console.safe import safe
from conductor.report.failure import gate_lines
from conductor.state.endings import COUNT_ORDER

TASK_COLS = (
    Col("STATE"),
    Col("TASK", shrink=True, least=16),
    Col("GROUP", shrink=True, least=6, drop=2),  # the gate rows say the group too
    Col("AGENT", shrink=True, least=6, drop=1),
    Col("TRY", ">"),
    Col("TIME", ">"),
    Col("DETAIL", shrink=True, least=30),
)
RUN_COLS = (
    Col("RUN"),
    Col("WORKFLOW", shrink=True, least=8),
    Col("STATE"),
    Col("STARTED", drop=1),
    Col("TIME", ">"),
    Col("TASKS", shrink=True, least=24),  # STARTED goes before the counts are cut
)
FAILURE_LINES = 3  # of each failure, beneath the table


def counts_line(run: Mapping[str, Any]) -> str:
    """``3 succeeded · 1 up to date · 1 failed``: states as people name them, apart."""
    return " · ".join(f"{n} {s.replace('_', ' ')}" for s, n in _run_counts(run).items())


def head_lines(doc: Mapping[str, Any], emoji: bool = True) -> list[Line]:
    """``run ID · name · ✖ failed · 5.3s`` and the counts."""
    run = doc["run"]
    state = state_cell(str(run["state"]), emoji=emoji)
    head: Line = [(f"run {run['id']} · {run.get('name') or ''} · ", "bold"), state,
                  (f" · {duration(run.get('elapsed_s'))}", "")]  # fmt: skip
    return [head, [(counts_line(run) or "no tasks", "")]]


def _detail(t: Mapping[str, Any]) -> Cell:
    state, error = str(t["state"]), t.get("error") or ""
    if state == "failed":
        said = (t.get("failure") or [])[-1:] or [error]
        return safe(said[0], newlines=False), "red"
    if state in ("skipped", "blocked", "cancelled"):
        if error.startswith("up to date (succeeded in run "):  # its state says the rest
            error = "from run " + error.removeprefix("up to date (succeeded in run ").rstrip(")")
        return safe(error, newlines=False), "dim"
    if state == "succeeded" and t.get("merge_commit"):
        return f"merged {str(t['merge_commit'])[:10]}", "dim"
    pct = f"{t['progress']:.0f}% " if isinstance(t.get("progress"), (int, float)) else ""
    return safe(pct + (t.get("step") or error), newlines=False).strip()


def _task_row(t: Mapping[str, Any], emoji: bool) -> list[Cell]:
    elapsed = t.get("elapsed_s")
    return [state_cell(str(t["state"]), t.get("error"), emoji), str(t["id"]),
            t.get("group") or "", t.get("agent") or "", str(t.get("attempts") or 0),
            duration(elapsed) if elapsed is not None else "–", _detail(t)]  # fmt: skip


def _gate_row(g: Mapping[str, Any], emoji: bool) -> list[Cell]:
    out = gate_lines(str(g.get("output") or ""))
    detail: Cell = (safe(out[-1], newlines=False), "red") if g["state"] == "failed" and out \
        else ("", "")  # fmt: skip
    took = g.get("duration_s")
    return [state_cell(str(g["state"]), emoji=emoji), f"gate {g['group']}", str(g["group"]),
            "", "", duration(took) if took is not None else "–", detail]  # fmt: skip


def rows(doc: Mapping[str, Any], emoji: bool = True) -> list[list[Cell]]:
    """Task rows in file order, each gate after its group's last task."""
    gates = {str(g["group"]): g for g in doc.get("gates") or ()}
    last = {t.get("group"): i for i, t in enumerate(doc["tasks"])}
    out: list[list[Cell]] = []
    for i, t in enumerate(doc["tasks"]):
        out.append(_task_row(t, emoji))
        g = t.get("group")
        if g in gates and last[g] == i:
            out.append(_gate_row(gates.pop(g), emoji))
    return out + [_gate_row(g, emoji) for g in gates.values()]


def table_lines(doc: Mapping[str, Any], width: int, emoji: bool = True) -> list[Line]:
    cells = rows(doc, emoji)
    return fit(TASK_COLS, cells, width) if cells else []


def failure_lines(doc: Mapping[str, Any], width: int) -> list[Line]:
    """Each failed task and gate with the last lines of what it said."""
    out: list[Line] = []
    for t in doc["tasks"]:
        if t["state"] != "failed":
            continue
        said = [s for s in t.get("failure") or [] if s != t.get("error")]  # not said twice
        n = t.get("attempts") or 0
        what = f"{t['id']} failed after {n} attempt{'s' * (n != 1)}"
        error = str(t.get("error") or "")
        # with its own lines to show, the error's kind is enough (not the check's command)
        what += f" ({error.split(':')[0]}):" if said else f": {error}"
        out += _block(what, said, width)
    for g in doc.get("gates") or ():
        if g["state"] == "failed":
            out += _block(f"gate {g['group']} failed", gate_lines(str(g.get("output") or "")),
                          width)  # fmt: skip
    return out


def _block(what: str, said: Sequence[str], width: int) -> list[Line]:
    from conductor.console.columns import cut

    lines: list[Line] = [[("", "")], [(cut(safe(what, newlines=False), width), "bold red")]]
    return lines + [[("  " + cut(safe(s, newlines=False), width - 2), "")]
                    for s in said[-FAILURE_LINES:]]  # fmt: skip


def status_lines(doc: Mapping[str, Any], width: int, emoji: bool = True) -> list[Line]:
    """The whole `status` output (the pools line as the terminal's, console/poolboard.py)."""
    return [*head_lines(doc, emoji), *pools_lines(doc), *table_lines(doc, width, emoji),
            *failure_lines(doc, width)]  # fmt: skip


def pools_lines(doc: Mapping[str, Any]) -> list[Line]:
    """``pools: local 1/4 · gpu 0/1 PAUSED (…)``; nothing for only `local`, unpaused."""
    from conductor.report.poolreport import pools_text

    pools = doc.get("pools") or []
    if not pools or (len(pools) == 1 and pools[0]["name"] == "local" and not pools[0]["paused"]):
        return []
    shown = [{**p, "reason": str(p.get("reason") or "").removeprefix(f"pool {p['name']} paused")
              .lstrip(": ")} for p in pools]  # fmt: skip
    paused = any(p["paused"] for p in pools)
    return [[("pools: " + pools_text(shown), "yellow" if paused else "")]]


def _run_counts(run: Mapping[str, Any]) -> dict[str, int]:
    """A run's counts in the order they are told everywhere (state/endings.py), with
    `up to date` apart from the other skipped tasks."""
    counts = {s: n for s, n in (run.get("counts") or {}).items() if n}
    fresh = min(int(run.get("up_to_date") or 0), counts.get("skipped", 0))
    if fresh:
        counts["up to date"] = fresh
        counts["skipped"] -= fresh
    order = [s for c in COUNT_ORDER for s in (("up to date", c) if c == "skipped" else (c,))]
    known = {s: counts[s] for s in order if counts.get(s)}
    return {**known, **{s: n for s, n in sorted(counts.items()) if s not in known and n}}


def runs_lines(docs: Sequence[Mapping[str, Any]], width: int, emoji: bool = True) -> list[Line]:
    """`runs`: one row per run, newest first."""
    import time

    cells: list[list[Cell]] = []
    for r in docs:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started"])) \
            if r.get("started") else "–"  # fmt: skip
        counts = counts_line(r)
        cells.append([r["id"], r.get("name") or "", state_cell(str(r["state"]), emoji=emoji),
                      started, duration(r.get("elapsed_s")), counts])  # fmt: skip
    return fit(RUN_COLS, cells, width)
