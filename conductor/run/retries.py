"""What one task remembers between its attempts in a run, and whether it gets another.

Pure decisions over a task's book and an attempt's outcome; the engine applies them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from conductor.run.outcome import Outcome, Prior
from conductor.spec.model import Task

MAX_CONFLICT_RETRIES = 3  # merge conflicts retried on the new head before the task fails
# attempts lost to infrastructure (a Ray node died under them) retried without counting
# against `retries`; past this many in a run the task fails (the cluster keeps losing it)
MAX_INFRA_RETRIES = 3
INFRA_BACKOFF_S = 1.0
MAX_BACKOFF_S = 300.0


def backoff_s(failures: int, base_s: float) -> float:
    """Exponential backoff with full jitter (``retry_backoff`` in config is the base)."""
    return random.uniform(0.5, 1.0) * min(base_s * 2.0 ** (failures - 1), MAX_BACKOFF_S)


@dataclass
class TaskBook:
    """Per-task memory across attempts within this run."""

    attempts: int = 0
    failures: int = 0
    conflicts: int = 0
    pauses: int = 0
    lost: int = 0  # attempts lost to infrastructure (``Outcome.extras["infra"]``)
    prior: Prior = field(default_factory=Prior)


def may_retry(task: Task, book: TaskBook, out: Outcome) -> bool:
    """Another attempt is allowed: a conflict within the conflict limit (with
    ``on_conflict: retry``), an attempt lost to infrastructure (within
    ``MAX_INFRA_RETRIES``), or a retriable failure within ``retries``."""
    if out.conflict:
        return task.on_conflict == "retry" and book.conflicts < MAX_CONFLICT_RETRIES
    if out.extras.get("infra"):
        return book.lost < MAX_INFRA_RETRIES
    return out.retriable and book.failures < task.retries


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def record_retry(book: TaskBook, out: Outcome, base_s: float) -> float:
    """Book the failed attempt and what the next one must know; return the delay."""
    if out.conflict:
        book.conflicts += 1
        book.prior = Prior(conflict=out.output, failure=book.prior.failure)
        return 0.0  # the new head is there already: retry at once
    if out.extras.get("infra"):  # not the task's fault: what the next attempt knows stays
        book.lost += 1
        return INFRA_BACKOFF_S
    book.failures += 1
    book.prior = Prior(
        failure=f"{out.error}\n\n{out.output}".strip(),
        session_id=_text(out.extras.get("session_id")),
        commit=out.result_commit,
        diff_base=_text(out.extras.get("diff_base")),
    )
    return backoff_s(book.failures, base_s)


def record_pause(book: TaskBook, out: Outcome) -> None:
    """A usage-limit pause costs no retry; the next attempt resumes the agent's session."""
    book.pauses += 1
    book.prior = Prior(failure=book.prior.failure, session_id=_text(out.extras.get("session_id")))
