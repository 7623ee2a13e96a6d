"""`conductor status` and `conductor runs` as rich tables.

They render the documents that ``--json`` prints (the `status_doc` shape), with the same
state icons and colours as the live view (``palette``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from conductor.console.palette import Palette, fmt_secs
from conductor.console.poolboard import pool_lines
from conductor.console.safe import safe
from conductor.state.endings import counts_text


def render_status_table(
    doc: Mapping[str, Any], *, emoji: bool = True, no_color: bool = False
) -> RenderableType:
    """`conductor status`: the run line, counts and one row per task (`status_doc` shape)."""
    p = Palette(emoji, no_color)
    run = doc["run"]
    head = Text()
    head.append(f"run {run['id']}  {run.get('name') or ''}  ", style=p.style("bold"))
    head.append_text(p.state(str(run["state"])))
    head.append(f"  {fmt_secs(run.get('elapsed_s'))}")
    counts = Text(counts_text(run.get("counts") or {}, "  "))
    table = Table(box=None, header_style=p.style("bold"), pad_edge=False)
    for col in ("state", "task", "group", "agent", "try", "time", "progress", "detail"):
        table.add_column(col, no_wrap=True, overflow="ellipsis")
    for t in doc["tasks"]:
        pct = f"{t['progress']:.0f}% " if isinstance(t.get("progress"), (int, float)) else ""
        said = (t.get("failure") or [])[-1:] or [t.get("error") or ""]  # the failure's words
        detail = safe(said[0])  # agent-provided: shown escaped
        table.add_row(
            p.state(str(t["state"])),
            Text(str(t["id"])),  # not markup: a fan-out task's id holds `[module=auth]`
            t.get("group") or "",
            t.get("agent") or "",
            str(t.get("attempts") or ""),
            fmt_secs(t.get("elapsed_s")) if t.get("elapsed_s") is not None else "",
            (pct + safe(t.get("step") or "", newlines=False)).strip(),
            Text(detail, style=p.style("red") if t["state"] == "failed" else ""),
        )
    pools = pool_lines(doc.get("pools") or [], p)  # none for a run with only `local`
    return Group(head, counts, *pools, table)


def render_runs_table(
    runs: Sequence[Mapping[str, Any]], *, emoji: bool = True, no_color: bool = False
) -> RenderableType:
    """`conductor runs`: one row per run (the `run` part of `status_doc`)."""
    p = Palette(emoji, no_color)
    table = Table(box=None, header_style=p.style("bold"), pad_edge=False)
    for col in ("run", "workflow", "state", "time", "tasks"):
        table.add_column(col, no_wrap=True)
    for r in runs:
        counts = counts_text(r.get("counts") or {})
        cells = (
            r["id"],
            r.get("name") or "",
            p.state(str(r["state"])),
            fmt_secs(r.get("elapsed_s")),
        )
        table.add_row(*cells, counts)
    return table

