"""The execution log's "Outputs" section: what each task wrote to $CONDUCTOR_OUTPUT."""

from __future__ import annotations

from conductor.report.mdtext import cell, fence
from conductor.report.rundata import RunData
from conductor.state.values import task_outputs

SHORT = 80  # a one-line value at most this long stays in the table; longer ones are fenced
MAX_SHOWN = 4000  # characters of one value in the log


def outputs_section(d: RunData) -> str:
    """A table of the short values, then each long or multi-line one fenced; "" for none."""
    found = task_outputs(d.attempts)
    if not found:
        return ""
    order = [t["task_id"] for t in d.tasks if t["task_id"] in found]
    table = ["| Task | Key | Value |", "|---|---|---|"]
    long: list[str] = []
    for tid in order:
        for key, value in found[tid].items():
            if "\n" in value or len(value) > SHORT:
                table.append(f"| **{cell(tid)}** | `{cell(key)}` | see below |")
                cut = value[:MAX_SHOWN]
                more = f" ({len(value) - len(cut):,} more characters)" if cut != value else ""
                long += [f"`tasks.{tid}.outputs.{key}`{more}:", "", fence(cut), ""]
            else:
                table.append(f"| **{cell(tid)}** | `{cell(key)}` | {cell(value) or '–'} |")
    return "\n".join(["## Outputs", "", *table, "", *long])
