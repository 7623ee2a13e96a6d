"""The execution log's words, line by line: counts in the right number, alerts as
sentences (never a Python dict), and why a task did not run under "Reason"."""

from __future__ import annotations

from conductor.report.alerts import _alert_text
from conductor.report.failure import failure_lines, meaningful
from conductor.report.logsections import _attempts_text


def test_attempts_are_counted_in_the_right_number() -> None:
    assert _attempts_text(7, 1) == "7 (1 retry)"
    assert _attempts_text(7, 2) == "7 (2 retries)"
    assert _attempts_text(6, 0) == "6"


def test_alerts_read_as_sentences() -> None:
    finished = _alert_text("run_finished", {"state": "failed",
                                            "counts": {"succeeded": 9, "failed": 1}})
    assert finished == "run failed: 9 succeeded, 1 failed"
    assert _alert_text("budget_reached", {"spent": 50.2, "budget": 50}) == (
        "budget reached: $50.20 of $50.00 spent")
    assert _alert_text("system_alert", {"alert": "disk 97% full", "action": "dispatch paused"}) == (
        "disk 97% full (dispatch paused)")
    odd = _alert_text("some_new_kind", {"counts": {"a": 1}, "ids": ["x", "y"]})
    assert "{" not in odd and "[" not in odd and "'" not in odd


PYTEST_OUT = """F                                                                        [100%]
=================================== FAILURES ===================================
____________________________________ test_x ____________________________________

    def test_x():
>       assert 0 == 4
E       assert 0 == 4

test_c.py:2: AssertionError
=========================== short test summary info ============================
FAILED test_c.py::test_x - assert 0 == 4
1 failed in 2.26s
exit code 1"""


def test_a_failure_is_its_last_meaningful_lines() -> None:
    assert meaningful(PYTEST_OUT) == [
        "E       assert 0 == 4", "test_c.py:2: AssertionError",
        "FAILED test_c.py::test_x - assert 0 == 4"]


def test_failure_lines_prefer_the_failed_check_then_the_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    log = tmp_path / "agent.log"
    log.write_text("# conductor: started\nthinking\nTraceback: boom\n# conductor: exited 1\n")
    base = {"run_id": "r", "task_id": "T", "n": 1, "state": "failed", "started": 1.0,
            "finished": 2.0, "log_path": str(log), "checks": None}
    assert failure_lines([base], "agent exited 1") == ["thinking", "Traceback: boom"]  # type: ignore[list-item]
    checked = {**base, "checks": json.dumps([{"name": "run: pytest", "ok": False,
                                              "output": PYTEST_OUT}])}
    assert failure_lines([checked], "validation failed")[-1].startswith("FAILED test_c.py")  # type: ignore[list-item]
    assert failure_lines([], "merge conflict in a.txt") == ["merge conflict in a.txt"]


def test_up_to_date_is_told_apart_from_skipped() -> None:
    from conductor.report.logsections import shown, told

    rows = [{"state": "succeeded", "error": None},
            {"state": "skipped", "error": "up to date (succeeded in run r1)"},
            {"state": "skipped", "error": "condition `false` is false"},
            {"state": "failed", "error": "agent exited 1"}]  # fmt: skip
    assert [shown(r) for r in rows] == ["succeeded", "up to date", "skipped", "failed"]  # type: ignore[arg-type]
    assert told(rows) == {"succeeded": 1, "up to date": 1, "skipped": 1, "failed": 1}  # type: ignore[arg-type]
