"""The execution log's sandbox section: one line per sandboxed attempt.

Each says what the attempt's sandbox allowed (its policy, as the attempt's own log states
it too) and what it refused: connections by target, and those the kernel refused inside
its network namespace. A refused write or read is the agent's own `Read-only file system`
or `Permission denied`, in its log. So a reader tells "the agent failed" from "the agent
was stopped from doing X". Read from `task_sandbox` events (run/sandboxing.py).
"""

from __future__ import annotations

from conductor.report.mdtext import cell, row
from conductor.state.records import EventRow


def sandbox_section(events: list[EventRow]) -> str:
    if not events:
        return ""
    out = ["## Sandbox", "",
           "Attempts ran confined with bubblewrap; what each allowed and refused:", "",
           row(("Task", "Attempt", "Allowed", "Refused")), "|---|---|---|---|"]  # fmt: skip
    for e in events:
        data = e["data"]
        refusals = data.get("refusals") or {}
        refused = "; ".join(f"{what} ×{n}" for what, n in refusals.items()) or "nothing"
        out.append(row((f"`{cell(e['task_id'] or '?')}`", cell(data.get("attempt", "?")),
                        cell(data.get("policy", ""), 400), cell(refused, 400))))  # fmt: skip
    return "\n".join(out) + "\n"
