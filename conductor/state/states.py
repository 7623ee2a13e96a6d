"""Every state a run, task or attempt can be in, every event kind, and the sets of them
that rules depend on — each named once, here.

Literal types rather than enums: the values are what the store, the JSON documents and
the hooks carry, so they stay plain strings, and mypy still rejects a misspelt one.
"""

from __future__ import annotations

from typing import Literal

RunState = Literal["running", "cancelling", "succeeded", "failed", "cancelled", "interrupted"]
# A run in these states may have a runner (liveness.py decides whether it really has).
RUN_LIVE: frozenset[str] = frozenset({"running", "cancelling"})
# Over for good: cancel refuses, resume has nothing to do.
RUN_ENDED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

TaskState = Literal[
    "pending",
    "running",
    "validating",
    "awaiting_approval",
    "approved",
    "rejected",
    "merging",
    "succeeded",
    "failed",
    "retrying",
    "paused",
    "blocked",
    "cancelling",
    "cancelled",
    "skipped",
    "interrupted",
    "rolled_back",
]
# The scheduler is done with these: nothing more happens to the task in this run.
TASK_TERMINAL: frozenset[str] = frozenset(
    {"succeeded", "failed", "blocked", "cancelled", "skipped"}
)
# An attempt of the task is in flight (a worker owns it).
TASK_ACTIVE: frozenset[str] = frozenset({"running", "validating", "merging"})
# Not started yet (or between attempts): may still start, so may still be blocked.
TASK_WAITING: frozenset[str] = frozenset({"pending", "retrying"})
# Validated and committed, held before its merge for a person's `approve` / `reject` (a
# decision the runner has not acted on yet is `approved` / `rejected`): no worker owns it,
# its dependents wait, and a resumed run brings it back as it was, without rerunning it.
TASK_HELD: frozenset[str] = frozenset({"awaiting_approval", "approved", "rejected"})
# Counts as done for the run's outcome and for dependents (up-to-date tasks are skipped).
TASK_OK: frozenset[str] = frozenset({"succeeded", "skipped"})
# What a person watching sees as "in progress" and as "settled" (interrupted included).
TASK_IN_PROGRESS: frozenset[str] = TASK_ACTIVE | {"retrying"}
TASK_SETTLED: frozenset[str] = TASK_TERMINAL | {"interrupted"}
# Kept as they are when a run resumes (everything else starts over as pending).
TASK_KEPT_ON_RESUME: frozenset[str] = frozenset(
    {"succeeded", "skipped", "failed", "blocked", "rolled_back"}
)

AttemptState = Literal[
    "running", "validating", "awaiting_approval", "merging", "succeeded", "failed", "paused",
    "interrupted",
]
# The runner died while an attempt was in one of these: recovery closes it.
ATTEMPT_OPEN: frozenset[str] = frozenset({"running", "validating", "merging"})

EventKind = Literal[
    "run_started",
    "run_finished",
    "task_queued",
    "task_started",
    "task_phase",  # the current attempt entered setup, agent, validate or merge
    "task_progress",
    "task_output",
    "task_usage",  # what an attempt's agent reported spending (cost, tokens, turns, model)
    "task_sandbox",  # a sandboxed attempt's policy and what its sandbox refused
    "task_warning",
    "task_completed",
    "task_failed",
    "task_retrying",
    "task_paused",
    "task_blocked",
    "task_cancelled",
    "task_skipped",
    "task_awaiting_approval",
    "task_approved",
    "task_rejected",
    "validation_passed",
    "validation_failed",
    "merged",
    "conflict",
    "gate_started",
    "gate_passed",
    "gate_failed",
    "budget_reached",
    "pool_paused",  # a pool starts nothing: its quota is spent, or a usage limit (until)
    "pool_resumed",
    "deadlock",  # nothing runs and nothing can start: the run ends failed (resumable)
    "system_alert",
    "hook_failed",
    "log_written",
    "rolled_back",
    "results_replaced",
]
Level = Literal["info", "warning", "error"]
# The level an event gets unless its emitter says otherwise.
LEVELS: dict[str, Level] = {
    "task_failed": "error",
    "validation_failed": "warning",
    "conflict": "warning",
    "task_warning": "warning",
    "system_alert": "warning",
    "gate_failed": "error",
    "task_blocked": "warning",
    "task_retrying": "warning",
    "task_rejected": "warning",
    "pool_paused": "warning",
    "deadlock": "error",
}
