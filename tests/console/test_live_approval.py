"""A task waiting for approval in the live view and in plain lines: visible, counted, and
with the command that decides it."""

from __future__ import annotations

import io

from conductor.console.plain import PlainSink, describe
from conductor.state.records import EventRow
from tests.console.test_live import Run, plain, terminal


def test_a_waiting_task_stays_in_view_with_how_to_decide_it() -> None:
    run = Run(terminal())
    run.ev("run_started", tasks=6, strategy="waves", concurrency=2)
    run.ev("task_started", "A0", attempt=1, agent="sh")
    run.ev("task_started", "A1", attempt=1, agent="sh")
    run.ev("task_awaiting_approval", "A0", attempt=1, commit="abc", files=2, insertions=5,
           deletions=1)  # fmt: skip
    frame = plain(run.frame())
    assert "1 awaiting_approval" in frame and "1 running" in frame
    assert "✋ awaiting_approval" in frame and "conductor approve|reject r1 A0" in frame
    run.ev("task_rejected", "A0", by="me", message="add tests", retry=True)
    assert "rejected" in plain(run.frame())
    run.ev("task_retrying", "A0", attempt=1, error="rejected by the reviewer: add tests")
    run.ev("task_started", "A0", attempt=2, agent="sh")
    run.ev("task_awaiting_approval", "A0", attempt=2, commit="def", files=1)
    run.ev("task_approved", "A0", by="me")
    run.ev("merged", "A0", commit="123")
    run.ev("task_completed", "A0", attempt=2)
    done = plain(run.frame())
    assert "awaiting" not in done and "1 succeeded" in done


def test_plain_lines_say_what_waits_and_who_decided() -> None:
    def row(kind: str, **data: object) -> EventRow:
        return {"id": 1, "run_id": "r1", "ts": 0.0, "kind": kind, "level": "info",
                "task_id": "T", "data": data}  # fmt: skip

    held = describe(row("task_awaiting_approval", attempt=1, files=2, insertions=5, deletions=1))
    assert held == ("T: AWAITING APPROVAL (attempt 1, 2 file(s) +5 -1): `conductor diff r1 T`, "
                    "then `conductor approve r1 T` or `conductor reject r1 T -m WHY`")  # fmt: skip
    assert describe(row("task_approved", by="ann")) == "T: approved by ann"
    assert describe(row("task_approved", auto=True)) == "T: approved (--auto-approve)"
    assert describe(row("task_rejected", message="x\x1b[2J")) == (
        "T: rejected: retried with feedback: x\\x1b[2J"
    )
    assert describe(row("task_rejected")) == "T: rejected: fails"
    out = io.StringIO()
    PlainSink(out, quiet=True)(row("task_awaiting_approval", attempt=1))
    assert "AWAITING APPROVAL" in out.getvalue()  # even --quiet: it needs someone
