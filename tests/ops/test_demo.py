"""`conductor demo` end to end in a subprocess, and the runner's debug log."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from conductor import __version__
from conductor.run.debuglog import BACKUPS, close_runner_log, setup_runner_log
from tests.testing.repos import git
from tests.testing.runner import conductor_argv, db_rows

TASKS = ("config", "numbers", "greeting", "sorted", "report", "index")


def fresh_machine_env(**extra: str) -> dict[str, str]:
    """The test's isolated HOME, but no git identity at all and no retry override."""
    drop = {"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
            "EMAIL", "CONDUCTOR_RETRY_BACKOFF"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "CONDUCTOR_DEMO_PAUSE": "0", **extra}


def demo(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*conductor_argv(), "demo", *args],
        cwd=cwd,
        env=fresh_machine_env(**env),
        text=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.slow
def test_demo_runs_end_to_end_on_a_fresh_machine(tmp_path: Path) -> None:
    target = tmp_path / "sandbox" / "demo"
    proc = demo(tmp_path, str(target))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"demo repository: {target}" in out and "\x1b[" not in out  # plain lines: no TTY
    log = Path(re.search(r"execution log:\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    assert log.is_file() and log.is_relative_to(target)
    assert "integration branch: conductor/demo" in out
    assert f"git -C {target} log --oneline --graph conductor/demo" in out
    for task in TASKS:  # every task merged exactly once into the integration branch
        merges = git(target, "log", "conductor/demo", "--merges", "--format=%H",
                     "--grep", f"Conductor-Task: {task}")  # fmt: skip
        assert len(merges.split()) == 1, task
    attempts = {r["task_id"]: r["attempts"] for r in db_rows(target, "SELECT * FROM tasks")}
    assert attempts["sorted"] == 2 and attempts["config"] == 1  # the flaky task was retried
    assert "retrying" in out and "gate passed" in out
    # the hooks collected their events; the user's branch and tree are untouched
    events = [
        json.loads(x) for x in (target / ".conductor/hooks.jsonl").read_text().split("\n") if x
    ]
    assert [e["event"] for e in events] == ["task_retrying", "run_finished"]
    assert events[0]["task"] == "sorted" and events[1]["state"] == "succeeded"
    assert git(target, "status", "--porcelain") == ""
    assert git(target, "log", "--format=%s", "main") == "conductor demo"
    runner_log = (target / ".conductor" / "conductor.log").read_text()
    assert f"conductor {__version__}" in runner_log and "git 2." in runner_log
    assert "event task_retrying sorted" in runner_log


@pytest.mark.slow
def test_demo_without_a_directory_uses_a_new_temporary_one(tmp_path: Path) -> None:
    proc = demo(tmp_path, TMPDIR=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    made = [p for p in tmp_path.iterdir() if p.name.startswith("conductor-demo-")]
    assert len(made) == 1 and f"demo repository: {made[0]}" in proc.stdout
    assert git(made[0], "rev-parse", "--verify", "conductor/demo")


def test_demo_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    proc = demo(tmp_path, str(mine))
    assert proc.returncode == 2
    assert "is not an empty directory" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_runner_log_records_the_environment_and_rotates(tmp_path: Path) -> None:
    state = tmp_path / ".conductor"
    logger = setup_runner_log(state, "git version 2.43.0\n", argv=["conductor", "run", "wf.yaml"])
    try:
        setup_runner_log(state, lambda: "git version 2.43.0")  # twice: still one handler
        text = (state / "conductor.log").read_text()
        assert f"conductor {__version__}" in text and "git 2.43.0" in text
        assert "argv conductor run wf.yaml" in text and f"cwd {os.getcwd()}" in text
        assert "python 3." in text and "platform " in text
        assert text.count("argv conductor run wf.yaml") == 1
        for i in range(6000):  # ~1.2 MB of debug lines
            logger.debug("line %d %s", i, "x" * 160)
    finally:
        close_runner_log(state)
    files = sorted(p.name for p in state.iterdir())
    assert files[:2] == ["conductor.log", "conductor.log.1"] and len(files) <= 1 + BACKUPS
    assert all(p.stat().st_size <= 1_100_000 for p in state.iterdir())
