"""Usage limits pause instead of failing, fallbacks, budgets, structured agent errors.

Agents here are the fake `claude` / `codex` CLIs in tests/fakes (same flags and
stream formats as the real ones), scripted by the ```fake-agent block in the prompt.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.testing.repos import git
from tests.testing.runner import db_rows, run_json, task_states, write_workflow


def script(*lines: str) -> str:
    body = "\n".join(f"      {line}" for line in lines)
    return f"|\n      Do the work.\n      ```fake-agent\n{body}\n      ```\n"


@pytest.mark.slow
def test_usage_limit_pauses_then_succeeds_without_using_a_retry(repo: Path) -> None:
    write_workflow(
        repo,
        f"""
version: 1
name: t
defaults: {{retries: 0}}
tasks:
  A:
    agent: claude
    prompt: {script("limit-once L 1", "write a.txt hello")}
""",
    )
    start = time.monotonic()
    code, events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    paused = [e for e in events if e["kind"] == "task_paused"]
    assert len(paused) == 1 and paused[0]["data"]["resume_at"] is not None
    started = [e["ts"] for e in events if e["kind"] == "task_started"]
    assert len(started) == 2 and started[1] >= paused[0]["data"]["resume_at"] - 0.1
    assert time.monotonic() - start < 30
    states = [r["state"] for r in db_rows(repo, "SELECT state FROM attempts ORDER BY n")]
    assert states == ["paused", "succeeded"]
    assert git(repo, "show", "conductor/t:a.txt") == "hello"


@pytest.mark.slow
def test_fallback_profile_takes_over_while_the_limit_lasts(repo: Path) -> None:
    write_workflow(
        repo,
        f"""
version: 1
name: t
defaults: {{retries: 0}}
agents:
  claude: {{preset: claude-code, fallback: codex}}
tasks:
  A:
    agent: claude
    prompt: {script("limit-once L 3600", "write a.txt from-fallback")}
""",
    )
    start = time.monotonic()
    code, events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert time.monotonic() - start < 30  # did not wait the hour
    paused = next(e for e in events if e["kind"] == "task_paused")
    assert paused["data"]["fallback"] == "codex"
    trailer = git(
        repo, "log", "-1", "--format=%(trailers:key=Conductor-Agent,valueonly)", "conductor/t^2"
    )  # the merged attempt, second parent of its merge
    assert trailer.strip() == "codex"


def test_budget_stops_dispatch_and_says_why(repo: Path) -> None:
    tasks = "\n".join(
        f"  T{i}:\n    agent: claude\n    prompt: {script(f'write t{i}.txt x')}" for i in range(4)
    )
    write_workflow(repo, f"version: 1\nname: t\nconcurrency: 1\nbudget: {{usd: 0.0015}}\n"
                         f"tasks:\n{tasks}\n")  # fmt: skip
    code, events, _ = run_json(repo, "wf.yaml")
    assert code == 1
    reached = next(i for i, e in enumerate(events) if e["kind"] == "budget_reached")
    assert not [e for e in events[reached:] if e["kind"] == "task_started"]
    states = task_states(repo)
    assert "cancelled" in states.values() and "succeeded" in states.values()
    run = db_rows(repo, "SELECT state, reason FROM runs")[0]
    assert run["state"] == "failed" and "budget of $0.0015 reached" in run["reason"]
    costs = [r["cost_usd"] for r in db_rows(repo, "SELECT cost_usd FROM attempts ORDER BY n")]
    assert sum(costs) >= 0.0015 > sum(costs[:-1])  # it stopped at the first task over


@pytest.mark.slow
def test_cost_and_tokens_are_recorded_per_attempt(repo: Path) -> None:
    write_workflow(
        repo,
        f"""
version: 1
name: t
tasks:
  A:
    agent: claude
    prompt: {script("write a.txt x", "run true")}
""",
    )
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    att = db_rows(repo, "SELECT * FROM attempts")[0]
    assert att["cost_usd"] > 0 and att["tokens_in"] > 0 and att["tokens_out"] > 0
    assert att["session_id"]
    task = db_rows(repo, "SELECT cost_usd FROM tasks")[0]
    assert task["cost_usd"] == att["cost_usd"]


@pytest.mark.slow
def test_exit_zero_with_an_error_result_is_a_failure(repo: Path, tmp_path: Path) -> None:
    """A wrapper around claude that exits 0 although the stream's result is an error."""
    init = json.dumps({"type": "system", "subtype": "init", "session_id": "s1"})
    result = json.dumps(
        {
            "type": "result",
            "subtype": "error_during_execution",
            "is_error": True,
            "result": "could not finish",
            "session_id": "s1",
        }
    )
    stream = tmp_path / "stream.jsonl"
    stream.write_text(f"{init}\n{result}\n")
    write_workflow(
        repo,
        f"""
version: 1
name: t
defaults: {{retries: 0}}
agents:
  wrapped: {{command: [cat, "{stream}"]}}
tasks:
  A: {{agent: wrapped, prompt: go}}
""",
    )
    code, events, _ = run_json(repo, "wf.yaml")
    assert code == 1
    failed = next(e for e in events if e["kind"] == "task_failed")
    assert "could not finish" in failed["data"]["error"]


@pytest.mark.slow
def test_resumed_retry_continues_on_its_own_previous_work(repo: Path) -> None:
    step = "run if [ -f part1.txt ]; then echo 2 > part2.txt; else echo 1 > part1.txt; fi"
    write_workflow(
        repo,
        f"""
version: 1
name: t
tasks:
  A:
    agent: claude
    retries: 1
    prompt: {script(step)}
    validate:
      - exists: [part1.txt, part2.txt]
""",
    )
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    sessions = [
        r["session_id"] for r in db_rows(repo, "SELECT session_id FROM attempts ORDER BY n")
    ]
    assert len(sessions) == 2 and sessions[0] == sessions[1]  # the retry resumed the session
    assert git(repo, "show", "conductor/t:part1.txt") == "1"
    assert git(repo, "show", "conductor/t:part2.txt") == "2"


@pytest.mark.slow
def test_interactive_agent_in_tmux_end_to_end(repo: Path) -> None:
    import shutil

    import pytest

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    write_workflow(
        repo,
        """
version: 1
name: t
agents:
  chat:
    command: [interactive_agent]
    executor: tmux
    tmux: {prompt: "result.txt done", prompt_pattern: "^> ?$"}
tasks:
  A: {agent: chat, prompt: "write the result", outputs: [result.txt], timeout: 60s}
""",
    )
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert git(repo, "show", "conductor/t:result.txt").startswith("done")
    log = next((repo / ".conductor" / "runs").glob("*/logs/A-1.log")).read_text()
    assert "result.txt done" in log  # the pane's text reached the attempt's log
