"""Pools shown everywhere: `status --json`, `status`, the execution log, the plain lines
and the live view say each pool's slots used and free, spend against quota and whether it
is paused; a deadlock is named in each (issue 13)."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from conductor.console.live import LiveView
from conductor.console.plain import PlainSink
from conductor.console.tables import render_status_table
from conductor.report.log import render
from conductor.report.status import status_doc
from conductor.run.start import drive
from conductor.spec.model import Pool
from tests.console.test_live import plain, terminal
from tests.run.test_pools import Overlap, pooled
from tests.testing.engine import SETTINGS, EngineResult, start, task, workflow
from tests.testing.repos import make_repo


@dataclass
class Ran:
    result: EngineResult
    doc: dict[str, Any]
    log: str
    lines: str  # the plain sink's output


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """A run whose pool `seats` spends its quota, then deadlocks (looked at by each test)."""
    repo = make_repo(tmp_path_factory.mktemp("views") / "repo")
    wf = pooled(repo, task("A", pool="seats"), task("B", pool="seats"),
                task("C", pool="seats"), task("D"),
                pools={"seats": Pool("seats", slots=1, usd=0.5, skills=("python",))},
                deadlock_grace_s=0.2)  # fmt: skip
    out = io.StringIO()
    with start(wf, Overlap(wf, hold_s=0.01, cost=0.3)) as h:
        state, _ = drive(h.ws, h.store, h.run_id, [PlainSink(out)], h.environ, wf, h.plan,
                         settings=SETTINGS, executor=h.executor)  # fmt: skip
        result = h.result(state)
        row = h.store.run(h.run_id)
        assert row is not None and result.state == "failed"
        return Ran(result, status_doc(h.store, row), render(h.store, h.run_id, wf),
                   out.getvalue())  # fmt: skip


def test_status_json_lists_each_pool(ran: Ran) -> None:
    local, seats = ran.doc["pools"]
    assert local == {"name": "local", "executor": "local", "slots": 4, "used": 0, "free": 4,
                     "usd": None, "spent_usd": 0.3, "paused": False, "reason": None,
                     "until": None, "skills": []}  # fmt: skip
    assert seats["slots"] == 1 and seats["free"] == 1 and seats["usd"] == 0.5
    assert seats["spent_usd"] == pytest.approx(0.6) and seats["skills"] == ["python"]
    assert seats["paused"] is True
    assert seats["reason"] == "quota of $0.5 reached ($0.6000 spent)"
    assert ran.doc["run"]["state"] == "failed"


def test_status_table_shows_the_pools_line(ran: Ran) -> None:
    console = Console(file=io.StringIO(), width=160)
    console.print(render_status_table(ran.doc, emoji=False, no_color=True))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "pools: local 0/4 $0.30 · seats 0/1 $0.60 of $0.50 PAUSED (quota of $0.5" in text


def test_the_execution_log_has_a_pools_table_and_the_deadlock(ran: Ran) -> None:
    assert "## Pools" in ran.log
    assert "| `seats` | local | 1 | 3 | $0.60 | $0.50 | ⏸️ paused: quota of $0.5 reached" in ran.log
    assert "| `local` | local | 4 | 1 | $0.30 | – | open |" in ran.log
    assert "deadlock" in ran.log and "C: pool seats paused" in ran.log


def test_plain_lines_say_when_a_pool_pauses_and_why_the_run_ended(ran: Ran) -> None:
    assert "pool seats paused: quota of $0.5 reached ($0.6000 spent)" in ran.lines
    assert ("DEADLOCK, the run ends failed (resumable): nothing ran or could start for 0.2s:"
            " C: pool seats paused") in ran.lines  # fmt: skip


def ev(view: LiveView, n: int, kind: str, task: str | None = None, **data: Any) -> None:
    view({"id": n, "run_id": "r1", "ts": time.time(), "kind": kind, "level": "info",
          "task_id": task, "data": data})  # fmt: skip


def test_the_live_view_shows_slots_spend_and_pauses() -> None:
    wf = workflow(Path("/nowhere/repo"), task("A", pool="seats"), task("B", pool="seats"),
                  task("C"), concurrency=3,
                  pools={"local": Pool("local"), "seats": Pool("seats", slots=2, usd=5.0)})
    view = LiveView(terminal(), wf, list(wf.tasks), dict.fromkeys(wf.tasks, 0))
    ev(view, 1, "run_started", tasks=3, concurrency=3)
    ev(view, 2, "task_started", "A", attempt=1, agent="fake")
    ev(view, 3, "task_usage", "A", attempt=1, cost_usd=1.25)

    def frame() -> str:
        console = view.console
        console.file = io.StringIO()
        console.print(view.renderable())
        return plain(console.file.getvalue())

    assert "pools: local 0/3 · seats 1/2 $1.25 of $5.00" in frame()
    ev(view, 4, "pool_paused", pool="seats", reason="usage limit",
       message="pool seats paused until 10:00:00: usage limit of fake")  # fmt: skip
    assert "seats 1/2 $1.25 of $5.00 PAUSED (until 10:00:00: usage limit of fake)" in frame()
    ev(view, 5, "pool_resumed", pool="seats")
    ev(view, 6, "deadlock", message="nothing ran or could start for 60s: B: pool seats has no slots")
    text = frame()
    assert "PAUSED" not in text
    assert "deadlock: nothing ran or could start for 60s: B: pool seats has no slots" in text


def test_a_run_with_only_the_default_pool_shows_no_pools_line() -> None:
    wf = workflow(Path("/nowhere/repo"), task("A"))
    view = LiveView(terminal(), wf, ["A"], {"A": 0})
    console = view.console
    console.print(view.renderable())
    assert "pools:" not in console.file.getvalue()  # type: ignore[attr-defined]
