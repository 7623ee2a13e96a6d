"""Terminal safety: agent-provided text (output lines, progress messages, errors) reaches a
terminal with its control characters shown escaped, through plain lines, `--verbose`,
`status`, `watch`, the live view and `logs` on a terminal; `logs` to a pipe keeps the bytes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, cast

import pytest
from rich.console import Console

from conductor.cli.run_cmds import _print_status
from conductor.console.plain import PlainSink, make_sink
from conductor.console.safe import safe
from conductor.console.tables import render_status_table
from conductor.ops.follow import copy_log
from conductor.state.records import EventRow
from tests.console.test_live import Run
from tests.testing.runner import cli, latest_run, write_workflow

OSC_TITLE = "\x1b]0;pwned\x07"
OSC_CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"
CLEAR = "\x1b[2J\x1b[H"
CR = "fake-ok\rREAL"
HOSTILE = f"a{OSC_TITLE}b{OSC_CLIPBOARD}c{CLEAR}d{CR}"
RAW = ("\x1b", "\x07", "\r")


def raw_in(text: str) -> list[str]:
    """The raw control characters ``text`` still holds (ANSI styling removed)."""
    import re

    styled = re.sub(r"\x1b\[[0-9;]*m", "", text)  # rich's own colours are fine
    return [c for c in RAW if c in styled]


def row(kind: str, task: str | None = "T", **data: Any) -> EventRow:
    return cast(EventRow, {"id": 1, "run_id": "r", "ts": 0.0, "kind": kind, "level": "info",
                           "task_id": task, "data": data})  # fmt: skip


def test_safe_escapes_controls_and_keeps_text() -> None:
    assert safe(OSC_TITLE) == "\\x1b]0;pwned\\x07"
    assert safe("a\tb\nc") == "a\tb\nc"
    assert safe("a\tb\nc", newlines=False) == "a b\\x0ac"
    assert safe(CR) == "fake-ok\\x0dREAL"
    assert safe("\x9b2J \u202e") == "\\x9b2J \\u202e"
    assert safe("plain ünïcode ✓") == "plain ünïcode ✓"


def test_plain_and_verbose_lines_escape_agent_text() -> None:
    out = io.StringIO()
    sink = PlainSink(out, verbose=True)
    sink(row("task_output", line=HOSTILE))
    sink(row("task_progress", percent=50, message=HOSTILE))
    sink(row("task_failed", error=HOSTILE))
    sink(row("hook_failed", None, hook="x", message=HOSTILE))
    text = out.getvalue()
    assert not raw_in(text), text
    assert text.count("\\x1b]0;pwned\\x07") == 4 and "\\x1b]52;c;" in text


def test_status_plain_and_table_escape_agent_text(capsys: pytest.CaptureFixture[str]) -> None:
    doc = {
        "run": {"id": "r", "name": "n", "state": "failed", "elapsed_s": 1.0, "counts": {}},
        "tasks": [
            {"id": "A", "state": "failed", "attempts": 1, "elapsed_s": 1.0, "progress": None,
             "step": None, "error": HOSTILE, "group": None, "agent": "sh"},
            {"id": "B", "state": "running", "attempts": 1, "elapsed_s": 1.0, "progress": 50,
             "step": HOSTILE, "error": None, "group": None, "agent": "sh"},
        ],
    }  # fmt: skip
    _print_status(doc, [row("task_progress", message=HOSTILE)])
    plain = capsys.readouterr().out
    assert not raw_in(plain) and "\\x1b]0;pwned" in plain
    console = Console(file=io.StringIO(), force_terminal=True, width=400)
    console.print(render_status_table(doc))
    table = console.file.getvalue()  # type: ignore[attr-defined]
    assert not raw_in(table) and "\\x1b]0;pwned" in table


def test_live_view_escapes_agent_text() -> None:
    run = Run(Console(file=io.StringIO(), force_terminal=True, width=400, height=40))
    run.ev("task_started", "A0", attempt=1, agent="sh")
    run.ev("task_progress", "A0", percent=10, message=HOSTILE, line=HOSTILE)
    run.ev("task_started", "A1", attempt=1, agent="sh")
    run.ev("task_failed", "A1", attempt=1, error=HOSTILE)
    run.ev("system_alert", None, message=HOSTILE)
    frame = run.frame()
    assert not raw_in(frame), repr(frame)
    assert frame.count("\\x1b]0;pwned") >= 3


def test_logs_escape_on_a_terminal_and_keep_bytes_in_a_pipe(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text(HOSTILE + "\nnext\tline\n")
    tty: list[str] = []
    copy_log(log, tty.append, False, lambda: True, escape=True)
    assert not raw_in("".join(tty)) and "".join(tty).endswith("\\x0dREAL\nnext\tline\n")
    pipe: list[str] = []
    copy_log(log, pipe.append, False, lambda: True)
    assert "".join(pipe) == HOSTILE + "\nnext\tline\n"


def test_cli_run_status_watch_and_logs_keep_escapes_off_the_terminal(repo: Path) -> None:
    write_workflow(
        repo,
        """
        version: 1
        name: t
        tasks:
          T:
            run: |
              printf 'out \\033]0;pwned\\007 \\033]52;c;cm0=\\007 \\033[2J fake\\rREAL\\n'
              conductor progress 50 "$(printf 'step \\033]0;pwned\\007 x\\ry')"
              sleep 1.5
              exit 1
            retries: 0
        """,
    )
    run = cli(repo, "run", "wf.yaml", "--verbose")
    assert run.returncode == 1, run.stdout + run.stderr
    rid = latest_run(repo)
    status = cli(repo, "status", rid, "--recent", "50")
    watch = cli(repo, "watch", rid)
    for proc in (run, status, watch):
        assert not raw_in(proc.stdout + proc.stderr), proc.args
    assert "out \\x1b]0;pwned\\x07" in run.stdout
    assert "step \\x1b]0;pwned\\x07 x\\x0dy" in status.stdout + watch.stdout
    logs = cli(repo, "logs", rid, "T")
    # (text mode reads a CR as a newline: the unit tests above check CR itself)
    assert "out \x1b]0;pwned\x07 \x1b]52;c;cm0=\x07 \x1b[2J fake" in logs.stdout
    assert make_sink(False).__class__ is PlainSink  # `watch` off a terminal: plain lines
