"""Honest endings: `watch` exits as the run did, skipped tasks are counted apart from
succeeded ones everywhere, and a conflict a retry settled says whose change won.

Real temp repositories, the shell preset, the installed CLI.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from conductor.console.live import LiveView
from conductor.console.tables import render_status_table
from conductor.spec.model import Task, Workflow
from conductor.state.endings import counts_text, exit_code
from tests.testing.runner import cli, conductor_argv, db_rows, run_json, write_workflow


def _last_run(repo: Path) -> str:
    return str(db_rows(repo, "SELECT id FROM runs ORDER BY started DESC LIMIT 1")[0]["id"])


def _log(repo: Path, run_id: str) -> str:
    return (repo / ".conductor" / "runs" / run_id / "EXECUTION_LOG.md").read_text()


def _watch_events(repo: Path, run_id: str) -> tuple[int, list[dict[str, Any]]]:
    proc = cli(repo, "watch", run_id, "--json")
    return proc.returncode, [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]


# ------------------------------------------------------------------ watch exits as the run did


@pytest.mark.slow  # an end-to-end run or two
def test_watch_of_a_succeeded_run_exits_0_and_of_a_failed_one_1(repo: Path) -> None:
    write_workflow(repo, """
        version: 1
        name: good
        tasks:
          A: {run: "echo a > a.txt"}
    """, "good.yaml")  # fmt: skip
    write_workflow(repo, """
        version: 1
        name: bad
        defaults: {retries: 0}
        tasks:
          A: {run: "exit 3"}
          B: {run: "echo b > b.txt", depends_on: [A]}
    """, "bad.yaml")  # fmt: skip
    assert cli(repo, "run", "good.yaml").returncode == 0
    good = _last_run(repo)
    assert cli(repo, "run", "bad.yaml").returncode == 1
    bad = _last_run(repo)
    assert cli(repo, "watch", good).returncode == 0
    proc = cli(repo, "watch", bad)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "run failed: 1 failed, 1 blocked" in proc.stdout
    assert cli(repo, "watch", bad, "--json").returncode == 1


@pytest.mark.slow  # an end-to-end run or two
def test_watch_of_a_detached_run_exits_with_its_code_once_it_ends(repo: Path) -> None:
    write_workflow(repo, """
        version: 1
        name: t
        defaults: {retries: 0}
        tasks:
          A: {run: "sleep 0.5; exit 1"}
    """)  # fmt: skip
    proc = cli(repo, "run", "wf.yaml", "--detach")
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.splitlines()[0]
    code, events = _watch_events(repo, run_id)  # follows the live run to its end
    assert code == 1
    assert events[-1]["kind"] == "log_written"
    assert any(e["kind"] == "run_finished" and e["data"]["state"] == "failed" for e in events)


@pytest.mark.slow
def test_watch_of_an_interrupted_run_exits_130(repo: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    write_workflow(repo, f"""
        version: 1
        name: t
        tasks:
          LONG: {{run: "touch {started}; sleep 60"}}
    """)  # fmt: skip
    proc = subprocess.Popen([*conductor_argv(), "run", "wf.yaml"], cwd=repo, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 20
    while not started.exists():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    watched = cli(repo, "watch", _last_run(repo))
    assert watched.returncode == 130
    assert "is interrupted: `conductor resume" in watched.stderr


def test_one_exit_code_mapping_for_run_resume_and_watch() -> None:
    assert [exit_code(s) for s in ("succeeded", "failed", "cancelled", "interrupted")] == [
        0, 1, 1, 130,
    ]  # fmt: skip


# ------------------------------------------------------------------ skipped is not succeeded

TWO = """
version: 1
name: t
tasks:
  A: {run: "echo a > a.txt"}
  B: {run: "cat a.txt > b.txt", depends_on: [A]}
"""


@pytest.mark.slow  # an end-to-end run or two
def test_skipped_tasks_are_counted_apart_everywhere(repo: Path) -> None:
    write_workflow(repo, TWO)
    assert cli(repo, "run", "wf.yaml").returncode == 0
    # a new task: A and B are up to date (skipped), C runs
    write_workflow(repo, TWO + '  C: {run: "echo c > c.txt"}\n')
    proc = cli(repo, "run", "wf.yaml")  # not a terminal: plain lines
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_id = _last_run(repo)
    assert "run succeeded: 1 succeeded, 2 skipped" in proc.stdout

    code, events = _watch_events(repo, run_id)
    assert code == 0
    finished = [e for e in events if e["kind"] == "run_finished"]
    assert finished[0]["data"]["counts"] == {"succeeded": 1, "skipped": 2}

    status = json.loads(cli(repo, "status", run_id, "--json").stdout)
    assert status["run"]["counts"] == {"succeeded": 1, "skipped": 2}

    log = _log(repo, run_id)
    assert "**succeeded** after" in log
    assert ": 1 succeeded, 2 up to date\n" in log
    assert "| Tasks | 3: 1 succeeded · 2 up to date |" in log


def test_run_json_counts_skipped_apart(repo: Path) -> None:
    write_workflow(repo, TWO)
    assert cli(repo, "run", "wf.yaml").returncode == 0
    code, events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    finished = [e for e in events if e["kind"] == "run_finished"]
    assert finished[0]["data"]["counts"] == {"skipped": 2}
    assert finished[0]["data"]["settled"] == []


def test_the_live_view_names_skipped_apart() -> None:
    tasks = {t: Task(id=t, agent="sh") for t in ("A", "B", "C")}
    wf = Workflow(path=Path("/x/wf.yaml"), name="demo", tasks=tasks)
    console = Console(file=io.StringIO(), width=120, force_terminal=True, color_system=None)
    view = LiveView(console, wf, list(tasks), {t: 0 for t in tasks})
    rows: list[tuple[str, str | None, dict[str, Any]]] = [
        ("task_skipped", "A", {"reason": "up to date"}),
        ("task_skipped", "B", {"reason": "up to date"}),
        ("task_started", "C", {"attempt": 1}),
        ("task_completed", "C", {"attempt": 1}),
        ("run_finished", None, {"state": "succeeded", "counts": {"succeeded": 1, "skipped": 2},
                                "settled": [{"task": "C", "over": "A", "paths": ["x.md"]}]}),
    ]  # fmt: skip
    for n, (kind, task, data) in enumerate(rows, 1):
        view({"id": n, "run_id": "r", "ts": 1000.0 + n, "kind": kind, "level": "info",
              "task_id": task, "data": data})  # fmt: skip
    console.print(view.renderable())
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "1 succeeded" in out and "2 skipped" in out
    assert "C was redone on top of A after a merge conflict in x.md" in out


def test_counts_are_told_in_one_order_with_skipped_named() -> None:
    counts = {"failed": 1, "skipped": 1, "succeeded": 3, "blocked": 2}
    assert counts_text(counts) == "3 succeeded, 1 skipped, 1 failed, 2 blocked"
    run = {"id": "r", "name": "t", "state": "succeeded", "elapsed_s": 1.0,
           "counts": {"skipped": 2, "succeeded": 1}}  # fmt: skip
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(render_status_table({"run": run, "tasks": []}))  # `status` on a terminal
    assert "1 succeeded · 2 skipped" in console.file.getvalue()  # type: ignore[attr-defined]


# ------------------------------------------------------------------ whose change superseded whose

CONFLICT = """
version: 1
name: t
concurrency: 2
defaults: {retries: 1}
tasks:
  T1: {run: "echo one > README.md"}
  # starts with T1 from the same head, writes the same file later: its first merge
  # conflicts with T1's; the retry starts from the head that holds T1's change
  T2: {run: "sleep 1; echo two > README.md"}
"""


@pytest.mark.slow  # an end-to-end run or two
def test_a_conflict_settled_by_a_retry_says_whose_change_it_was_redone_on(repo: Path) -> None:
    write_workflow(repo, CONFLICT)
    proc = cli(repo, "run", "wf.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sentence = "T2 was redone on top of T1 after a merge conflict in README.md"
    assert sentence in proc.stdout  # the plain-lines summary, after `run succeeded`
    assert proc.stdout.index("run succeeded") < proc.stdout.index(sentence)
    run_id = _last_run(repo)
    assert f"> - {sentence}" in _log(repo, run_id)
    conflict = db_rows(repo, "SELECT data FROM events WHERE kind = 'conflict'")
    assert json.loads(conflict[0]["data"])["over"] == "T1"
    _code, events = _watch_events(repo, run_id)
    finished = next(e for e in events if e["kind"] == "run_finished")
    assert finished["data"]["settled"] == [{"task": "T2", "over": "T1", "paths": ["README.md"]}]
