"""The live view, rendered to a fake terminal at several moments of a synthetic run."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from conductor.console.live import LiveView
from conductor.console.plain import PlainSink
from conductor.console.sinks import display
from conductor.console.tables import render_runs_table, render_status_table
from conductor.plan.planner import make_plan
from conductor.spec.model import Group, Task, Validator, Workflow

ANSI = re.compile(r"\x1b\[")


def workflow() -> Workflow:
    """Six tasks: wave 0 (A0..A2, group setup) then wave 1 (B0..B2, group build)."""
    tasks = {
        f"A{i}": Task(id=f"A{i}", group="setup", agent="sh", estimate_s=60, timeout_s=600)
        for i in range(3)
    }
    tasks |= {
        f"B{i}": Task(id=f"B{i}", group="build", agent="claude", estimate_s=60, deps=("A0",))
        for i in range(3)
    }
    groups = {
        "setup": Group("setup"),
        "build": Group("build", validate=(Validator("run", run="true"),)),
    }
    return Workflow(path=Path("/x/wf.yaml"), name="demo", tasks=tasks, groups=groups)


class Run:
    """Feeds events to a view with a controllable clock."""

    def __init__(self, console: Console, **kw: Any) -> None:
        self.now = 1000.0
        wf = workflow()
        waves = {t: 0 if t.startswith("A") else 1 for t in wf.tasks}
        self.view = LiveView(console, wf, list(wf.tasks), waves, clock=lambda: self.now, **kw)
        self.console = console
        self.n = 0

    def ev(self, kind: str, task: str | None = None, **data: Any) -> None:
        self.n += 1
        row = {"id": self.n, "run_id": "r1", "ts": self.now, "kind": kind, "level": "info",
               "task_id": task, "data": data}  # fmt: skip
        self.view(row)

    def frame(self) -> str:
        out = self.console.file
        assert isinstance(out, io.StringIO)
        out.seek(0)
        out.truncate()
        self.console.print(self.view.renderable())
        return out.getvalue()


def terminal(**kw: Any) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=120, height=40, **kw)


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_frames_follow_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    run = Run(terminal())
    run.ev("run_started", tasks=6, strategy="waves", concurrency=2)
    run.ev("task_started", "A0", attempt=1, agent="sh")
    run.ev("task_started", "A1", attempt=1, agent="sh")
    run.now += 30
    run.ev("task_progress", "A0", percent=40, step="compiling", line="gcc -c main.c")
    early = plain(run.frame())
    assert "0/6 done" in early and "30s elapsed" in early
    assert "wave 1/2" in early and "setup" in early
    assert "2 running" in early and "4 pending" in early
    assert "40% compiling" in early and "gcc -c main.c" in early
    assert "30s/10m00s" in early  # elapsed / timeout

    run.ev("task_retrying", "A1", attempt=1, error="agent exited 1", delay_s=2)
    run.ev("task_completed", "A0", attempt=1)
    run.ev("task_started", "A2", attempt=1, agent="sh")
    run.ev("task_failed", "A2", attempt=1, error="validation failed: run: pytest -q\ndetails")
    middle = plain(run.frame())
    assert "1 succeeded" in middle and "1 failed" in middle and "1 retrying" in middle
    assert "validation failed: run: pytest -q" in middle  # the failure stays visible
    assert "agent exited 1" in middle
    assert "details" not in middle  # only the error's first line fits a row

    run.ev("task_started", "A1", attempt=2, agent="sh")
    run.now += 10
    run.ev("task_completed", "A1", attempt=2)
    for t in ("B0", "B1", "B2"):
        run.ev("task_started", t, attempt=1, agent="claude")
        run.now += 5
        run.ev("merged", t, commit="0123456789abcdef")
        run.ev("task_completed", t, attempt=1)
    late = plain(run.frame())
    # finished successes collapse while the run goes on, and say so
    assert "B2" in late and "A0" not in late and "… 2 more: 2 succeeded" in late
    run.ev("gate_passed", None, group="build")
    run.ev("run_finished", None, state="failed", counts={"succeeded": 5, "failed": 1})
    run.ev("log_written", None, path="/repo/.conductor/runs/r1/EXECUTION_LOG.md")
    final = plain(run.frame())
    assert "6/6 done" in final and "5 succeeded" in final and "1 failed" in final
    assert "✖ failed" in final and "validation failed" in final
    # the final frame lists every task that fits, a success with its merge
    assert "A0" in final and "merged 0123456789" in final and "more" not in final
    assert re.search(r"✔ passed\s+gate build", final)  # the gate is a row of its own
    assert "EXECUTION_LOG.md" not in final  # printed after the final frame, unwrapped:
    run.view._live = type("Stopped", (), {"stop": lambda self: None})()  # type: ignore[assignment]
    run.view.stop()
    assert "execution log: /repo/.conductor/runs/r1/EXECUTION_LOG.md\n" in plain(
        run.console.file.getvalue())  # type: ignore[attr-defined]
    assert "ETA" not in final


def test_eta_scales_estimates_by_observed_durations() -> None:
    run = Run(terminal())
    run.ev("run_started", tasks=6, concurrency=2)
    run.ev("task_started", "A0", attempt=1, agent="sh")
    run.ev("task_started", "A1", attempt=1, agent="sh")
    run.now += 30
    run.ev("task_completed", "A1", attempt=1)  # estimated 60s, took 30s: the rest halves
    run.now += 5
    # wave 0: A0 is overdue (30s expected, 35s spent) so a sliver, 3s, and A2 30s: 30s.
    # wave 1: three 30s tasks at concurrency 2 take max(30, 90 / 2) = 45s.
    assert "ETA ~1m15s" in plain(run.frame())


def test_no_ansi_codes_off_a_terminal_or_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    def frame(console: Console, **kw: Any) -> str:
        run = Run(console, **kw)
        run.ev("run_started", tasks=6, concurrency=2)
        run.ev("task_started", "A0", attempt=1, agent="sh")
        run.ev("task_failed", "A0", attempt=1, error="boom")
        return run.frame()

    assert ANSI.search(frame(terminal()))  # the control: a terminal gets colour
    assert not ANSI.search(frame(Console(file=io.StringIO(), width=120)))
    assert not ANSI.search(frame(terminal(), no_color=True))
    monkeypatch.setenv("NO_COLOR", "1")
    text = frame(terminal())
    assert not ANSI.search(text) and "boom" in text


def test_ascii_icons_without_emoji() -> None:
    run = Run(terminal(), emoji=False)
    run.ev("task_started", "A0", attempt=1, agent="sh")
    run.ev("task_failed", "A0", attempt=1, error="boom")
    text = plain(run.frame())
    assert "x failed" in text and "✖" not in text and "█" not in text


class SlowFile(io.StringIO):
    """A terminal that takes 50 ms per write, like one over a slow ssh link."""

    def write(self, s: str) -> int:
        time.sleep(0.05)
        return super().write(s)


def test_sink_calls_never_wait_for_the_terminal() -> None:
    console = Console(file=SlowFile(), force_terminal=True, width=120, height=40)
    run = Run(console, refresh_per_second=20)
    run.ev("task_started", "A0", attempt=1, agent="sh")
    run.view.start()
    try:
        started = time.perf_counter()
        for i in range(300):
            run.ev("task_progress", "A0", percent=i % 100, step=f"step {i}")
        took = time.perf_counter() - started
        time.sleep(0.3)  # let the refresh thread draw a few frames
    finally:
        run.view.stop()
    assert took < 0.25, f"300 events took {took:.2f}s"
    text = plain(console.file.getvalue())  # type: ignore[attr-defined]
    assert text.count("conductor · demo") >= 2  # redrawn on its own thread
    assert "step 299" in text  # the final frame shows the latest state


def test_status_and_runs_tables_share_states_and_colours() -> None:
    doc: dict[str, Any] = {
        "run": {"id": "r1", "name": "demo", "state": "failed", "elapsed_s": 75.0,
                "counts": {"succeeded": 1, "failed": 1}},
        "tasks": [
            {"id": "A0", "state": "succeeded", "attempts": 1, "group": "setup", "agent": "sh",
             "elapsed_s": 3.0, "progress": 100.0, "step": None, "error": None},
            {"id": "A1", "state": "failed", "attempts": 2, "group": "setup", "agent": "sh",
             "elapsed_s": 9.0, "progress": None, "step": "tests", "error": "agent exited 1"},
        ],
    }  # fmt: skip
    console = terminal()
    console.print(render_status_table(doc))
    console.print(render_runs_table([doc["run"]]))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    text = plain(out)
    assert "✖ failed" in text and "✔ succeeded" in text and "agent exited 1" in text
    assert "1m15s" in text and "1 failed" in text
    assert "\x1b[1;31m✖ failed" in out  # the same red as the live view
    quiet = Console(file=io.StringIO(), width=120)
    quiet.print(render_status_table(doc, emoji=False))
    assert "x failed" in quiet.file.getvalue()  # type: ignore[attr-defined]


def test_display_picks_plain_lines_off_a_terminal() -> None:
    wf = workflow()
    out = io.StringIO()
    with display(make_plan(wf), file=out) as sink:
        assert isinstance(sink, PlainSink)
        sink({"id": 1, "run_id": "r1", "ts": time.time(), "kind": "task_failed",
              "level": "error", "task_id": "A0", "data": {"error": "boom"}})  # fmt: skip
    assert "A0: FAILED: boom" in out.getvalue() and not ANSI.search(out.getvalue())
