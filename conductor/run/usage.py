"""What an attempt's agent reported spending, as the attempt records it.

Cost, input/output/cache tokens, turns and model go on the attempt's row; the status
document, the export and the execution log sum them per task, group and run
(``conductor.report.spend``), and a ``task_usage`` event carries them to the live view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from conductor.agents.parsers import AgentReport
from conductor.state.records import AttemptRow


def own_share(report: AgentReport, resumed: str | None, n: int,
              attempts: Iterable[AttemptRow]) -> None:  # fmt: skip
    """Make ``report`` this attempt's alone when it resumed a session whose CLI reports
    totals since the session began (codex): the earlier attempts of that session already
    recorded their part."""
    if report.session_id is None or report.session_id != resumed:
        return
    earlier = [a for a in attempts if a["n"] < n and a["session_id"] == report.session_id]
    if report.tokens_in is not None:
        report.tokens_in = max(0, report.tokens_in - sum(a["tokens_in"] or 0 for a in earlier))
    if report.tokens_out is not None:
        report.tokens_out = max(0, report.tokens_out - sum(a["tokens_out"] or 0 for a in earlier))
    if report.tokens_cache is not None:
        cached = sum(a["tokens_cache"] or 0 for a in earlier)
        report.tokens_cache = max(0, report.tokens_cache - cached)


def usage_fields(report: AgentReport, redact: Callable[[str], str]) -> dict[str, Any]:
    """The attempt columns (and ``task_usage`` event fields) of a report. The model name
    is the agent's own text: masked like every other sink."""
    return {
        "cost_usd": report.cost_usd,
        "tokens_in": report.tokens_in,
        "tokens_out": report.tokens_out,
        "tokens_cache": report.tokens_cache,
        "turns": report.turns,
        "model": redact(report.model) if report.model else None,
    }
