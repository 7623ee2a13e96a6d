"""Why a task will not run shows in the live view: the condition that skipped it, the
trigger rule, or what blocks it."""

from __future__ import annotations

from tests.console.test_live import Run, plain, terminal


def test_skipped_and_blocked_tasks_say_why() -> None:
    run = Run(terminal())
    run.ev("run_started", tasks=6, strategy="waves", concurrency=2)
    run.ev("task_skipped", "A1", reason="when false: tasks.A0.outputs.count != '0'",
           condition="tasks.A0.outputs.count != '0'")  # fmt: skip
    run.ev("task_skipped", "A2", reason="trigger one_failed: no dependency failed")
    run.ev("task_failed", "A0", attempt=1, error="exit 1")
    run.ev("task_blocked", "B0", cause="A0")
    frame = plain(run.frame())
    assert "when false: tasks.A0.outputs.count != '0'" in frame
    assert "trigger one_failed: no dependency failed" in frame
    assert "blocked by A0" in frame
