"""The trigger rules as a table: a rule and the states of a task's dependencies → verdict."""

from __future__ import annotations

import pytest

from conductor.run.triggers import rule_verdict

CASES = [
    # all_success: every dependency ok (skipped counts); blocked at the first bad one
    ("all_success", ["succeeded", "skipped"], "run"),
    ("all_success", ["succeeded", "running"], "wait"),
    ("all_success", ["running", "failed"], "block"),
    ("all_success", ["cancelled"], "block"),
    ("all_success", [], "run"),
    # all_done: everything settled, however
    ("all_done", ["failed", "blocked", "skipped", "succeeded"], "run"),
    ("all_done", ["failed", "retrying"], "wait"),
    ("all_done", ["failed", "pending"], "wait"),
    # one_failed: at the first bad one, without waiting; skipped when none
    ("one_failed", ["failed", "running"], "run"),
    ("one_failed", ["blocked"], "run"),
    ("one_failed", ["succeeded", "running"], "wait"),
    ("one_failed", ["succeeded", "skipped"], "skip"),
    ("one_failed", [], "skip"),
    # one_success: at the first success (a skipped one is none); else blocked or skipped
    ("one_success", ["running", "succeeded"], "run"),
    ("one_success", ["failed", "succeeded"], "run"),
    ("one_success", ["failed", "running"], "wait"),
    ("one_success", ["failed", "skipped"], "block"),
    ("one_success", ["skipped", "skipped"], "skip"),
    ("one_success", [], "run"),
]


@pytest.mark.parametrize(("rule", "states", "expected"), CASES)
def test_verdicts(rule: str, states: list[str], expected: str) -> None:
    assert rule_verdict(rule, states) == expected
