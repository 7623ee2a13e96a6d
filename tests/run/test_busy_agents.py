"""Busy is not idle, end to end (issue 11): `idle_timeout` spares a silent task whose
processes work (CPU) and an agent waiting on its own tool call (a test suite), and says so
in the agent log; a task that only waits is still stopped as idle, and `timeout` stops a
busy one. Agents here are the fake `claude` of tests/fakes: its `sleep N` step is a Bash
tool call that stays silent (and uses no CPU) for N seconds before its result."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.testing.runner import db_rows, run_json, write_workflow

SPIN = "import time\\nt = time.time()\\nwhile time.time() - t < 3: pass\\nprint(42)"

WORKFLOW = f"""
version: 1
name: t
defaults: {{retries: 0, idle_timeout: 1s}}
tasks:
  SPINS:
    run: 'printf "{SPIN}" > spin.py && {sys.executable} spin.py > spun.txt'
  SLEEPS:
    run: 'echo started > s.txt; sleep 1000'
  TOOL:
    agent: claude
    prompt: |
      Run the tests.
      ```fake-agent
      sleep 3
      write tested.txt yes
      ```
  SLOW_TOOL:
    agent: claude
    timeout: 2s
    prompt: |
      ```fake-agent
      sleep 1000
      ```
"""


def _log(repo: Path, task: str) -> str:
    return next((repo / ".conductor" / "runs").glob(f"*/logs/{task}-1.log")).read_text()


def test_idle_timeout_spares_busy_tasks_and_stops_waiting_ones(repo: Path) -> None:
    write_workflow(repo, WORKFLOW)
    code, events, err = run_json(repo, "wf.yaml")
    assert code == 1, err
    done = {e["task"] for e in events if e["kind"] == "task_completed"}
    failed = {e["task"]: e["data"]["error"] for e in events if e["kind"] == "task_failed"}
    assert done == {"SPINS", "TOOL"}, failed
    assert failed == {"SLEEPS": "no output for 1s", "SLOW_TOOL": "timed out after 2s"}
    assert "but busy (its processes used" in _log(repo, "SPINS")
    assert "but busy (a tool call is in flight)" in _log(repo, "TOOL")
    tried = {r["task_id"]: r["state"] for r in db_rows(repo, "SELECT task_id, state FROM attempts")}
    assert tried == {"SPINS": "succeeded", "TOOL": "succeeded", "SLEEPS": "failed",
                     "SLOW_TOOL": "failed"}  # fmt: skip
