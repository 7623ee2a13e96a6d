"""Hooks: real processes, the event on stdin, placeholders, timeouts and failures."""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from conductor.run.hooks import HookSink
from conductor.spec.model import Group, Task, Validator, Workflow
from tests.testing.repos import write

# Records its argv and stdin, one JSON line per call.
RECORDER = """
import json, sys
with open(sys.argv[1], "a") as fh:
    fh.write(json.dumps({"argv": sys.argv[2:], "stdin": json.loads(sys.stdin.read())}) + "\\n")
"""


def workflow(tmp: Path, hooks: dict[str, tuple[str, ...]]) -> Workflow:
    tasks = {
        "A": Task(id="A", group="gated"),
        "B": Task(id="B", group="gated"),
        "C": Task(id="C", group="plain"),
        "D": Task(id="D", group="cached"),
    }
    groups = {
        "gated": Group("gated", validate=(Validator("run", run="true"),)),
        "plain": Group("plain"),
        "cached": Group("cached"),
    }
    return Workflow(path=tmp / "wf.yaml", name="t", tasks=tasks, groups=groups, hooks=hooks)


_ids = itertools.count(1)


def row(kind: str, task: str | None = None, level: str = "info", **data: Any) -> dict[str, Any]:
    return {"id": next(_ids), "run_id": "run-1", "ts": 1234.5, "kind": kind, "level": level,
            "task_id": task, "data": data}  # fmt: skip


class Warnings:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float]] = []

    def __call__(self, kind: str, message: str) -> None:
        self.seen.append((kind, message, time.monotonic()))


def recorder(tmp: Path) -> tuple[Path, tuple[str, ...]]:
    script = write(tmp / "record.py", RECORDER)
    out = tmp / "calls.jsonl"
    return out, (sys.executable, str(script), str(out))


def calls(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def test_hook_gets_the_event_on_stdin_and_placeholders_in_argv(tmp_path: Path) -> None:
    out, rec = recorder(tmp_path)
    hooks = {"task_failed": (*rec, "{run}", "{task} {state}", "{group}", "$(touch pwned); {x}")}
    warn = Warnings()
    sink = HookSink(workflow(tmp_path, hooks), warn)
    sink(row("task_started", "A", attempt=1))  # no hook for it
    sink(row("task_failed", "A", level="error", attempt=2, error="validation failed"))
    assert sink.close(10)
    [call] = calls(out)
    assert call["argv"] == ["run-1", "A failed", "gated", "$(touch pwned); {x}"]  # no shell
    event = call["stdin"]
    assert event["event"] == "task_failed" and event["task"] == "A" and event["run"] == "run-1"
    assert event["data"] == {"attempt": 2, "error": "validation failed"}
    assert event["state"] == "failed" and event["level"] == "error"
    assert not (tmp_path / "pwned").exists() and warn.seen == []


def test_run_finished_state_comes_from_the_event(tmp_path: Path) -> None:
    out, rec = recorder(tmp_path)
    sink = HookSink(workflow(tmp_path, {"run_finished": (*rec, "{state}", "{task}")}), Warnings())
    sink(row("run_finished", None, state="succeeded", counts={"succeeded": 4}))
    sink.close(10)
    assert calls(out)[0]["argv"] == ["succeeded", ""]


def test_group_completed_fires_once_per_group_that_finished(tmp_path: Path) -> None:
    out, rec = recorder(tmp_path)
    sink = HookSink(workflow(tmp_path, {"group_completed": (*rec, "{group}")}), Warnings())
    sink(row("task_skipped", "D", reason="up to date"))  # nothing ran: no hook for `cached`
    sink(row("task_completed", "A"))
    sink(row("task_completed", "B"))  # gated: waits for the gate
    sink(row("task_completed", "C"))  # no gate: done now
    sink(row("gate_passed", None, group="gated"))
    sink.close(10)
    got = calls(out)
    assert [c["argv"] for c in got] == [["plain"], ["gated"]]
    assert (
        got[1]["stdin"]["kind"] == "gate_passed" and got[1]["stdin"]["event"] == "group_completed"
    )


def test_a_hanging_hook_is_killed_at_its_timeout_with_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hang = ("sh", "-c", f"sleep 30 & echo $! > {pids}; sleep 30")
    warn = Warnings()
    sink = HookSink(workflow(tmp_path, {"task_failed": hang}), warn, timeout_s=0.5)
    started = time.monotonic()
    sink(row("task_failed", "A", error="x"))
    queued = time.monotonic() - started
    assert sink.close(15)
    assert queued < 0.1  # the engine's call returned at once
    [(kind, message, when)] = warn.seen
    assert kind == "task_failed" and "timed out after 0.5s and was killed" in message
    assert "(A)" in message and when - started < 5
    child = int(pids.read_text())
    time.sleep(0.1)
    assert not _alive(child), "the hook's background child survived"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead but not yet reaped by its (dead) parent's reaper
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_failing_and_missing_hooks_warn_and_the_rest_still_run(tmp_path: Path) -> None:
    out, rec = recorder(tmp_path)
    hooks = {
        "task_failed": ("sh", "-c", "echo first; echo 'no route to host' >&2; exit 3"),
        "task_retrying": (str(tmp_path / "no-such-hook"),),
        "task_completed": rec,
    }
    warn = Warnings()
    sink = HookSink(workflow(tmp_path, hooks), warn)
    sink(row("task_failed", "A"))
    sink(row("task_retrying", "B"))
    sink(row("task_completed", "C"))
    assert sink.close(10)
    messages = [m for _, m, _ in warn.seen]
    assert "exited 3: no route to host" in messages[0]
    assert "could not start" in messages[1]
    assert len(calls(out)) == 1


def test_hook_failure_events_never_run_hooks(tmp_path: Path) -> None:
    out, rec = recorder(tmp_path)
    sink = HookSink(workflow(tmp_path, {"task_failed": rec}), Warnings())
    sink(row("hook_failed", None, hook="task_failed", message="x"))
    sink(row("task_failed", "A", hook="task_failed"))  # a warning about a hook, re-emitted
    assert sink.close(5)
    assert calls(out) == []


def test_hooks_run_in_the_given_directory(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    script = write(repo / "scripts" / "notify.sh", "#!/bin/sh\ncat > got.json\n")
    script.chmod(0o755)
    sink = HookSink(workflow(tmp_path, {"run_started": ("./scripts/notify.sh",)}), Warnings(),
                    cwd=repo)  # fmt: skip
    sink(row("run_started", None, tasks=4))
    sink.close(10)
    assert json.loads((repo / "got.json").read_text())["data"] == {"tasks": 4}
