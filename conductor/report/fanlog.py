"""The execution log's task tables with fan-out: expansions under a row naming their task.

A heading row (``**T5**``, how many expansions and how they ended) is followed by the
rows of its expansions, marked ``↳``, so twenty expansions read as one unit of the phase.
"""

from __future__ import annotations

from collections.abc import Callable

from conductor.report.mdtext import cell, row
from conductor.spec.fanout import by_template, note
from conductor.spec.model import Workflow
from conductor.state.endings import count_states, counts_text
from conductor.state.records import TaskRow


def rows_under_templates(
    wf: Workflow, rows: list[TaskRow], render: Callable[[TaskRow], str], columns: int
) -> list[str]:
    """The table rows of ``rows`` (each drawn by ``render``), expansions under headings."""
    by_id = {t["task_id"]: t for t in rows}
    out: list[str] = []
    for template, ids in by_template(wf, by_id):
        if template is None:
            out.append(render(by_id[ids[0]]))
            continue
        ended = counts_text(count_states(by_id[t]["state"] for t in ids))
        summary = cell(f"{note(wf, template, ids)}: {ended}")
        out.append(row([f"**{template}**", summary, *[""] * (columns - 2)]))
        out += [render(by_id[t]).replace("| **", "| ↳ **", 1) for t in ids]
    return out
