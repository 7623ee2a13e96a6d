"""The live view and the plain lines show what the run's agents have spent so far."""

from __future__ import annotations

import io
import time

from conductor.console.plain import PlainSink
from tests.console.test_live import Run, plain, terminal


def usage(run: Run, task: str, attempt: int, cost: float | None, t_in: int, t_out: int) -> None:
    run.ev("task_usage", task, attempt=attempt, cost_usd=cost, tokens_in=t_in, tokens_out=t_out,
           tokens_cache=0, turns=2, model="m")  # fmt: skip


def test_the_header_shows_the_running_total_failed_attempts_included() -> None:
    run = Run(terminal())
    run.ev("run_started", tasks=6, concurrency=2)
    run.ev("task_started", "B0", attempt=1, agent="claude")
    assert "$" not in plain(run.frame())  # nothing reported yet: nothing shown
    usage(run, "B0", 1, 0.0031, 1500, 40)
    run.ev("task_retrying", "B0", attempt=1, error="agent exited 1", delay_s=1)
    run.ev("task_started", "B0", attempt=2, agent="claude")
    usage(run, "B0", 2, 0.0009, 12_000, 960)
    text = plain(run.frame())
    assert "$0.004 · 13.5k in / 1.0k out tokens" in text  # sub-cent, with its digits
    run.ev("task_started", "A0", attempt=1, agent="sh")
    usage(run, "A0", 1, None, 2_000_000, 5)  # an agent that reports no cost (codex)
    assert "$0.004 · 2.0M in / 1.0k out tokens" in plain(run.frame())


def test_plain_lines_say_what_an_attempt_spent() -> None:
    out = io.StringIO()
    PlainSink(out)({"id": 1, "run_id": "r1", "ts": time.time(), "kind": "task_usage",
                    "level": "info", "task_id": "A0",
                    "data": {"attempt": 1, "cost_usd": 0.0042, "tokens_in": 1234,
                             "tokens_out": 56, "tokens_cache": 1000, "turns": 3,
                             "model": "claude-sonnet-4"}})  # fmt: skip
    line = out.getvalue()
    assert "A0: agent reported $0.0042 · 1,234 in (1,000 cached) · 56 out · 3 turns" in line
    assert "claude-sonnet-4" in line
