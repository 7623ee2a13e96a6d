"""The live view lists a fan-out task's expansions under its id, with how far they are."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from rich.console import Console

from conductor.console.live import LiveView
from conductor.console.tables import render_status_table
from conductor.spec.model import Task, Workflow


def workflow() -> Workflow:
    tasks = [Task(id="X", agent="sh")]
    tasks += [Task(id=f"T[m={v}]", agent="sh", template="T", matrix={"m": v}, max_parallel=2)
              for v in "abc"]  # fmt: skip
    return Workflow(path=Path("/x/wf.yaml"), name="fo", tasks={t.id: t for t in tasks})


def test_expansions_are_rows_under_their_task_heading() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=120, height=40)
    wf = workflow()
    view = LiveView(console, wf, list(wf.tasks), dict.fromkeys(wf.tasks, 0), clock=lambda: 5.0)
    n = 0

    def ev(kind: str, task: str, **data: Any) -> None:
        nonlocal n
        n += 1
        view({"id": n, "run_id": "r1", "ts": 1.0, "kind": kind, "level": "info",
              "task_id": task, "data": data})  # fmt: skip

    ev("task_started", "T[m=a]", attempt=1, agent="sh")
    ev("task_started", "X", attempt=1, agent="sh")
    ev("task_started", "T[m=b]", attempt=1, agent="sh")
    ev("task_completed", "T[m=a]", attempt=1)
    console.print(view.renderable())
    assert isinstance(console.file, io.StringIO)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console.file.getvalue())
    rows = [line.split() for line in text.splitlines()]
    names = [r[2] if r[0] in ("▶", "✔") else r[0] for r in rows[4:] if r]  # after the header
    at = names.index("T")
    assert names[at + 1 : at + 3] == ["[m=b]", "[m=a]"]  # running first, then done
    assert names.index("X") not in (at + 1, at + 2)  # not among the expansions
    heading = next(line for line in text.splitlines() if line.split()[:1] == ["T"])
    assert "1/3 done · 1 running" in heading


def test_status_shows_an_expansion_id_as_written_not_as_markup() -> None:
    doc = {"run": {"id": "r1", "state": "running", "counts": {}},
           "tasks": [{"id": "T[module=auth]", "state": "running"}]}  # fmt: skip
    console = Console(file=io.StringIO(), width=120)
    console.print(render_status_table(doc))
    assert isinstance(console.file, io.StringIO)
    assert "T[module=auth]" in console.file.getvalue()
