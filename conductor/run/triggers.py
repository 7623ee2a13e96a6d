"""Trigger rules: whether a task runs, given how its dependencies ended (after Airflow's).

Each dependency (and each group gate the task waits for) is in one of three conditions:
*ok* (succeeded, or skipped: up to date, by its `when:` or by its own trigger rule),
*bad* (failed, blocked, cancelled) or *unsettled* (not finished yet). Then:

==============  ========================================================================
all_success     runs once every dependency is ok; blocked as soon as one is bad
                (the default, and what conductor always did)
all_done        runs once every dependency is settled, ok or bad (a report, a cleanup)
one_failed      runs as soon as one dependency is bad; skipped once all are ok
one_success     runs as soon as one dependency *succeeded* (skipped ones do not count);
                once all settled without one: blocked if one is bad, else skipped
==============  ========================================================================

A skipped dependency counts as ok for all_success: skipping says its own work is not
needed, not that the work after it is not (GitHub Actions and Airflow's all_success skip
the dependents too; a task that wants that says `when: tasks.X.state == 'succeeded'`).
A task without dependencies in the run runs, except that one_failed is skipped (nothing
failed). A task skipped or blocked here is settled for its own dependents in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Verdict = Literal["wait", "run", "skip", "block"]

OK: frozenset[str] = frozenset({"succeeded", "skipped"})
BAD: frozenset[str] = frozenset({"failed", "blocked", "cancelled"})


def rule_verdict(rule: str, states: Sequence[str]) -> Verdict:
    """What a task with trigger ``rule`` does, its dependencies being in ``states``."""
    return counts_verdict(rule, len(states), sum(s in OK for s in states),
                          sum(s in BAD for s in states), states.count("succeeded"))  # fmt: skip


def counts_verdict(rule: str, total: int, ok: int, bad: int, succeeded: int) -> Verdict:
    """``rule_verdict`` from counts alone (of ``total`` inputs: ``ok`` ones, of which
    ``succeeded`` succeeded, and ``bad`` ones), which the scheduler keeps per task."""
    settled = ok + bad == total
    if rule == "all_done":
        return "run" if settled else "wait"
    if rule == "one_failed":
        return "run" if bad else "skip" if settled else "wait"
    if rule == "one_success":
        if not total or succeeded:
            return "run"
        return "wait" if not settled else "block" if bad else "skip"
    return "block" if bad else "run" if settled else "wait"


def skip_reason(rule: str) -> str:
    """Why a task its trigger rule skipped did not run."""
    if rule == "one_failed":
        return "trigger one_failed: no dependency failed"
    return "trigger one_success: no dependency succeeded"
