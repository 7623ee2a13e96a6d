"""What an attempt reports back to the engine, and what the next attempt must know."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conductor.run.context import RunContext
    from conductor.spec.model import Task


@dataclass
class Outcome:
    task_id: str
    attempt: int
    ok: bool
    error: str = ""
    retriable: bool = True
    conflict: bool = False
    interrupted: bool = False
    output: str = ""  # validator output or conflict details, for the next attempt
    merge_commit: str | None = None
    result_commit: str | None = None
    cost_usd: float | None = None
    paused: bool = False  # a rate or usage limit: try again later, not a failure
    resume_at: float | None = None  # when the limit resets, if the agent said
    awaiting_approval: bool = False  # validated and committed, held for `conductor approve`
    extras: dict[str, object] = field(default_factory=dict)


@dataclass
class Prior:
    """What the previous attempt left for this one to know."""

    failure: str | None = None
    conflict: str | None = None
    session_id: str | None = None
    # a resumed session continues on top of its own previous work (the agent remembers
    # making those changes); checks still see the task's whole diff from `diff_base`
    commit: str | None = None
    diff_base: str | None = None
    feedback: str | None = None  # why a reviewer rejected the previous attempt


def trailers(ctx: RunContext, task: Task, n: int, status: str) -> dict[str, str]:
    return {
        "Conductor-Run": ctx.run_id,
        "Conductor-Task": task.id,
        "Conductor-Attempt": str(n),
        "Conductor-Agent": task.agent,
        "Conductor-Status": status,
    }
