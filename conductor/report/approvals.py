"""The execution log's note on tasks held before their merge: who waits, and how to decide.

The task tables show their state; this section says what a reader must do about it, so a
log read the morning after tells that the run waits for a person, not for an agent.
"""

from __future__ import annotations

from conductor.report.mdtext import cell
from conductor.report.rundata import RunData, fmt_duration


def approvals_section(d: RunData) -> str:
    waiting = [t for t in d.tasks if t["state"] == "awaiting_approval"]
    if not waiting:
        return ""
    run = d.run["id"]
    out = ["## Awaiting approval", "",
           "These tasks passed their checks; their work is committed on their attempt "
           "branches and merges once approved:", ""]  # fmt: skip
    for t in waiting:
        tid = t["task_id"]
        atts = d.by_task.get(tid, [])
        held_at = atts[-1]["finished"] if atts else None  # when its checks passed
        since = f" for {fmt_duration(d.now - held_at)}" if held_at else ""
        out.append(f"- **{cell(tid)}**{since}: `conductor diff {run} {tid}`, then "
                   f"`conductor approve {run} {tid}` or "
                   f"`conductor reject {run} {tid} --message WHY`")  # fmt: skip
    return "\n".join(out) + "\n"
