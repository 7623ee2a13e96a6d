"""The claude-code and codex presets, proven against the real, unmodified CLIs.

Each test starts tests/modelserver.py on 127.0.0.1, scripts what the "model" answers, and
runs `conductor run` in a temp git repo with a workflow whose agent is the real CLI. The
CLI does the work through its own tools (Claude's Write/Bash, Codex's apply_patch and
exec_command); conductor must commit, validate and merge it and record what the CLI's
structured output reported. Skipped only when a CLI is not installed (scripts/install_agents.sh).
"""

from __future__ import annotations

import json
import re
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testing.modelserver import ModelServer, Step
from tests.testing.realcli import AgentSandbox, find_cli, live_processes, missing_reason
from tests.testing.repos import git
from tests.testing.runner import db_rows, run_json, task_states, write_workflow

pytestmark = pytest.mark.slow  # real agent CLIs, each a full run

needs_claude = pytest.mark.skipif(find_cli("claude") is None, reason=missing_reason("claude"))
needs_codex = pytest.mark.skipif(find_cli("codex") is None, reason=missing_reason("codex"))
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PROFILES = {"claude": "{preset: claude-code}", "codex": "{preset: codex, model: gpt-5.5}"}


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


@pytest.fixture
def agent_env(tmp_path: Path, server: ModelServer) -> dict[str, str]:
    return AgentSandbox.create(tmp_path, server.url).env()


def workflow(repo: Path, agent: str, task: str) -> None:
    """wf.yaml with one task T1 run by ``agent``; ``task`` holds T1's other fields."""
    fields = textwrap.indent(textwrap.dedent(task).strip(), " " * 4)
    head = f"""\
version: 1
name: real
defaults: {{retries: 0, timeout: 90s, idle_timeout: 30s}}
agents:
  {agent}: {PROFILES[agent]}
tasks:
  T1:
    agent: {agent}
"""
    write_workflow(repo, head + fields + "\n")


def attempt_rows(repo: Path) -> list[dict[str, Any]]:
    return db_rows(repo, "SELECT * FROM attempts WHERE task_id = 'T1' ORDER BY n")


def run(repo: Path, env: dict[str, str]) -> tuple[int, list[dict[str, Any]], str, float]:
    start = time.monotonic()
    code, events, err = run_json(repo, "wf.yaml", env=env)
    return code, events, err, time.monotonic() - start


def failure(events: list[dict[str, Any]]) -> str:
    return "\n".join(str(e["data"]) for e in events if e["kind"] in ("task_failed", "run_finished"))


def progress_steps(events: list[dict[str, Any]]) -> list[str]:
    return [str(e["data"].get("step")) for e in events if e["kind"] == "task_progress"]


def assert_no_processes_left(repo: Path) -> None:
    run_id = db_rows(repo, "SELECT id FROM runs")[0]["id"]
    pgid = attempt_rows(repo)[0]["pid"]
    assert pgid, "the attempt recorded no pid"
    deadline = time.monotonic() + 2  # a HUP'd grandchild may take a moment to die
    while (left := live_processes(pgid, run_id)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == [], f"processes left behind: {left}"


# ------------------------------------------------------------------------------ Claude Code

CLAUDE_WORK: list[Step] = [
    {
        "tool": "Write",
        "input": {"file_path": "{cwd}/hello.txt", "content": "hello from claude\n"},
        "usage": {"input_tokens": 1000, "output_tokens": 30},
    },
    {
        "tool": "Bash",
        "input": {"command": "wc -l hello.txt > count.txt"},
        "usage": {"input_tokens": 1200, "output_tokens": 40},
    },
    {"text": "Wrote hello.txt.", "usage": {"input_tokens": 1500, "output_tokens": 50}},
]


@needs_claude
def test_claude_writes_through_its_tools_and_the_work_is_merged(
    repo: Path, server: ModelServer, agent_env: dict[str, str]
) -> None:
    server.add(*CLAUDE_WORK)
    workflow(
        repo,
        "claude",
        """
        prompt: Create hello.txt saying hello, then count its lines into count.txt.
        outputs: [hello.txt, count.txt]
        validate: [{contains: {path: hello.txt, pattern: hello from claude}}]
        """,
    )
    code, events, err, took = run(repo, agent_env)
    assert code == 0, failure(events) + err
    assert git(repo, "show", "conductor/real:hello.txt") == "hello from claude"
    assert git(repo, "show", "conductor/real:count.txt") == "1 hello.txt"
    turns = server.turns()
    assert len(turns) == 3 and "count its lines into count.txt" in turns[0].text
    row = attempt_rows(repo)[0]
    assert (row["tokens_in"], row["tokens_out"]) == (1000 + 1200 + 1500, 30 + 40 + 50)
    assert row["cost_usd"] is not None and 0 < row["cost_usd"] < 1  # tokens x model price
    assert row["model"] and row["turns"] == 3  # the init's model, the result's num_turns
    assert UUID.match(row["session_id"])
    assert turns[0].headers.get("X-Claude-Code-Session-Id") == row["session_id"]
    assert "Write hello.txt" in progress_steps(events)
    assert took < 30


@needs_claude
def test_claude_stalled_stream_is_killed_by_idle_timeout_with_nothing_left(
    repo: Path, server: ModelServer, agent_env: dict[str, str]
) -> None:
    # a background child first, so "nothing left" covers the agent's children too
    server.add(
        {"tool": "Bash", "input": {"command": "sleep 300", "run_in_background": True}},
        {"stall": True},
    )
    workflow(repo, "claude", "prompt: Start a server, then think.\nidle_timeout: 3s")
    code, events, err, took = run(repo, agent_env)
    assert code == 1, err
    assert "no output" in failure(events)
    assert_no_processes_left(repo)
    assert took < 30


# ------------------------------------------------------------------------------------ Codex

PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+hello from codex\n*** End Patch\n"
CODEX_WORK: list[Step] = [
    {
        "tool": "apply_patch",
        "custom": True,
        "input": PATCH,
        "usage": {"input_tokens": 1000, "output_tokens": 30},
    },
    {
        "tool": "exec_command",
        "input": {"cmd": "wc -l hello.txt > count.txt"},
        "usage": {"input_tokens": 1200, "output_tokens": 40},
    },
    {"text": "Wrote hello.txt.", "usage": {"input_tokens": 1500, "output_tokens": 50}},
]


@needs_codex
def test_codex_writes_through_its_tools_and_the_work_is_merged(
    repo: Path, server: ModelServer, agent_env: dict[str, str]
) -> None:
    server.add(*CODEX_WORK)
    workflow(
        repo,
        "codex",
        """
        prompt: Create hello.txt saying hello, then count its lines into count.txt.
        outputs: [hello.txt, count.txt]
        validate: [{contains: {path: hello.txt, pattern: hello from codex}}]
        """,
    )
    code, events, err, took = run(repo, agent_env)
    assert code == 0, failure(events) + err
    assert git(repo, "show", "conductor/real:hello.txt") == "hello from codex"
    assert git(repo, "show", "conductor/real:count.txt") == "1 hello.txt"
    turns = server.turns()
    assert len(turns) == 3 and "count its lines into count.txt" in turns[0].text
    assert turns[0].body["model"] == "gpt-5.5"  # the profile's model reached the CLI
    row = attempt_rows(repo)[0]
    assert (row["tokens_in"], row["tokens_out"]) == (1000 + 1200 + 1500, 30 + 40 + 50)
    assert row["cost_usd"] is None  # codex reports no cost
    assert (row["turns"], row["tokens_cache"]) == (1, 0)  # one exec, one turn
    assert UUID.match(row["session_id"]) and row["session_id"] in turns[0].text
    assert "Edit hello.txt" in progress_steps(events)
    assert took < 30


@needs_codex
def test_codex_stalled_stream_is_killed_by_idle_timeout_with_nothing_left(
    repo: Path, server: ModelServer, agent_env: dict[str, str]
) -> None:
    # a command still running in codex's PTY first, so "nothing left" covers it too
    server.add(
        {"tool": "exec_command", "input": {"cmd": "sleep 300", "yield_time_ms": 250}},
        {"stall": True},
    )
    workflow(repo, "codex", "prompt: Start a server, then think.\nidle_timeout: 3s")
    code, events, err, took = run(repo, agent_env)
    assert code == 1, err
    assert "no output" in failure(events)
    assert_no_processes_left(repo)
    assert took < 30


# ---------------------------------------------------------------------------------- retries

WRITE_ANSWER = {
    "claude": lambda n: {
        "tool": "Write",
        "input": {"file_path": "{cwd}/answer.txt", "content": f"{n}\n"},
    },
    "codex": lambda n: {"tool": "exec_command", "input": {"cmd": f"echo {n} > answer.txt"}},
}
AGENTS = [pytest.param("claude", marks=needs_claude), pytest.param("codex", marks=needs_codex)]


def run_wrong_then_right(repo: Path, server: ModelServer, env: dict[str, str], agent: str) -> int:
    """Attempt 1 writes 41, its validator wants 42, attempt 2 writes 42: 1000/10 tokens a turn."""
    usage = {"usage": {"input_tokens": 1000, "output_tokens": 10}}
    for n in (41, 42):
        server.add({**WRITE_ANSWER[agent](n), **usage}, {"text": "Done.", **usage})
    workflow(
        repo,
        agent,
        """
        prompt: Write the answer into answer.txt.
        retries: 1
        validate: [{contains: {path: answer.txt, pattern: "^42$"}}]
        """,
    )
    code, events, err, took = run(repo, env)
    assert code == 0, failure(events) + err
    assert took < 30
    return code


@pytest.mark.parametrize("agent", AGENTS)
def test_retry_after_validator_failure_succeeds(
    repo: Path, server: ModelServer, agent_env: dict[str, str], agent: str
) -> None:
    run_wrong_then_right(repo, server, agent_env, agent)
    assert git(repo, "show", "conductor/real:answer.txt") == "42"
    assert [r["state"] for r in attempt_rows(repo)] == ["failed", "succeeded"]
    assert "validation failed" in server.turns()[2].text  # the retry was told what failed


# a resumed session reports totals since the session began (claude's total_cost_usd,
# codex's turn.completed usage): conductor records each attempt's own share
@pytest.mark.parametrize("agent", AGENTS)
def test_resumed_retry_records_only_its_own_usage(
    repo: Path, server: ModelServer, agent_env: dict[str, str], agent: str
) -> None:
    run_wrong_then_right(repo, server, agent_env, agent)
    first, second = attempt_rows(repo)
    assert second["session_id"] == first["session_id"]  # the retry resumed the session
    for row in (first, second):
        assert (row["tokens_in"], row["tokens_out"]) == (2000, 20)
    assert second["cost_usd"] == first["cost_usd"]  # equal work, equal cost (None for codex)


# ------------------------------------------------------------------- rate limits and budget

# An agent that hit a rate limit is paused, not failed. Claude Code retries a 429 itself up
# to 10 times and codex per its provider's request_max_retries (realcli's config.toml keeps
# that low): CLAUDE_CODE_MAX_RETRIES=0 makes claude give up at once, so the 429 reaches its
# structured output. The CLIs state no reset time, so conductor pauses for
# backoff_s(n) * 30: a small CONDUCTOR_RETRY_BACKOFF keeps that pause a fraction of a second.
FAST_LIMITS = {"CLAUDE_CODE_MAX_RETRIES": "0", "CONDUCTOR_RETRY_BACKOFF": "0.01"}


@pytest.mark.parametrize("agent", AGENTS)
def test_rate_limit_pauses_the_task_then_it_succeeds_without_using_a_retry(
    repo: Path, server: ModelServer, agent_env: dict[str, str], agent: str
) -> None:
    server.add({"status": 429, "retry_after": 1}, WRITE_ANSWER[agent](42), {"text": "Done."})
    workflow(
        repo,
        agent,
        """
        prompt: Write the answer into answer.txt.
        retries: 0
        validate: [{contains: {path: answer.txt, pattern: "^42$"}}]
        """,
    )
    code, events, err, took = run(repo, {**agent_env, **FAST_LIMITS})
    assert code == 0, failure(events) + err  # retries: 0, so a failed attempt would end it
    assert git(repo, "show", "conductor/real:answer.txt") == "42"
    paused = [e for e in events if e["kind"] == "task_paused"]
    assert len(paused) == 1 and paused[0]["task"] == "T1", events
    assert "429" in str(paused[0]["data"]["error"])
    assert paused[0]["data"]["resume_at"] is not None  # the event says when it resumes
    assert [r["state"] for r in attempt_rows(repo)] == ["paused", "succeeded"]
    turns = server.turns()  # attempt 1 got the 429 alone; attempt 2 did the work
    assert turns[0].step == {"status": 429, "retry_after": 1} and len(turns) == 3
    assert took < 30


# Codex reports no cost (attempts record cost_usd None), so a USD budget can never be
# reached by codex tasks: the budget stop is proven with claude alone.
BUDGET_WORKFLOW = """\
version: 1
name: real
concurrency: 1
budget: {usd: %s}
defaults: {agent: claude, retries: 0, timeout: 90s, idle_timeout: 30s}
agents:
  claude: {preset: claude-code}
tasks:
  T1: {prompt: Write the answer into answer.txt.}
  T2: {prompt: Write the answer into answer.txt.}
  T3: {prompt: Write the answer into answer.txt.}
"""
# claude prices 2 turns of 1000 input + 10 output tokens at $0.0084 (tokens x its model's
# price): the budget lies between one task's cost and two tasks' cost
TASK_COST, BUDGET = 0.0084, 0.012


@needs_claude
def test_budget_reached_stops_dispatch_and_ends_the_run_with_the_reason(
    repo: Path, server: ModelServer, agent_env: dict[str, str]
) -> None:
    usage = {"usage": {"input_tokens": 1000, "output_tokens": 10}}
    for n in (1, 2, 3):
        server.add({**WRITE_ANSWER["claude"](n), **usage}, {"text": "Done.", **usage})
    write_workflow(repo, BUDGET_WORKFLOW % BUDGET)
    code, events, err, took = run(repo, agent_env)
    assert code == 1, failure(events) + err
    costs = [r["cost_usd"] for r in db_rows(repo, "SELECT cost_usd FROM attempts")]
    assert costs == [pytest.approx(TASK_COST)] * 2  # two tasks ran, and cost what was planned
    assert [e["data"]["spent"] for e in events if e["kind"] == "budget_reached"] == [
        pytest.approx(2 * TASK_COST)
    ]
    reason = db_rows(repo, "SELECT reason FROM runs")[0]["reason"]
    assert reason and "budget" in reason, reason
    started = {e["task"] for e in events if e["kind"] == "task_started"}
    assert len(started) == 2, events
    (never,) = {"T1", "T2", "T3"} - started  # the third task never started
    assert task_states(repo)[never] == "cancelled"
    assert len(server.turns()) == 4  # and its agent never ran
    assert took < 30


# ------------------------------------------------------------- the scripted server itself


def _post(url: str, doc: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, json.dumps(doc).encode(), {"content-type": "x/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_model_server_scripts_tool_calls_errors_and_stalls(server: ModelServer) -> None:
    """Runs without any CLI: the server's answers are what the real agents tests rely on."""
    server.add(
        {"status": 429, "retry_after": 7},
        {"tool": "Write", "input": {"file_path": "{cwd}/x.txt", "content": "{kept}"}},
        {"text": "done", "usage": {"input_tokens": 5, "output_tokens": 3}},
        {"stall": 0.2},
    )
    turn = {"model": "m", "tools": [{"name": "Write"}], "stream": True,
            "system": "Primary working directory: /w/t1\n"}  # fmt: skip
    status, headers, body = _post(server.url + "/v1/messages", turn)
    assert status == 429 and headers["retry-after"] == "7" and "rate_limit_error" in body
    status, _, body = _post(server.url + "/v1/messages?beta=true", turn)
    deltas = [json.loads(x[6:]) for x in body.splitlines() if x.startswith("data: ")]
    assert [d["type"] for d in deltas] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert deltas[4]["delta"]["stop_reason"] == "tool_use"
    assert json.loads(deltas[2]["delta"]["partial_json"]) == {
        "file_path": "/w/t1/x.txt",
        "content": "{kept}",
    }
    status, _, body = _post(server.url + "/v1/responses", {**turn, "stream": False})
    assert json.loads(body)["usage"]["input_tokens"] == 5  # a non-streamed answer
    start = time.monotonic()
    _, _, body = _post(server.url + "/v1/messages", turn)
    assert time.monotonic() - start >= 0.2 and body.count("data: ") == 1
    _post(server.url + "/v1/messages", {"model": "m", "messages": []})  # no tools: no step
    assert [r.step is not None for r in server.requests] == [True] * 4 + [False]
