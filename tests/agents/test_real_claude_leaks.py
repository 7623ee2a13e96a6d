"""The real Claude Code CLI leaves no process behind (issue 11), offline.

A scripted model (tests/testing/modelserver.py on 127.0.0.1) answers with a Bash tool call
that starts two background processes the way agents do, each escaping the agent's process
group (`setsid`) or its hangups (`nohup`), and writes their pids where the test can see
them started. After each ending of the run (success, an idle_timeout kill, `conductor
cancel`) /proc holds no live process (zombies ignored) carrying the run's
CONDUCTOR_PROCESS_MARK or the token the test put in the runner's environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents.test_real_agents import workflow
from tests.run.test_containment_procs import TOKEN_VAR, _carriers, leftovers
from tests.testing.modelserver import ModelServer, Step
from tests.testing.realcli import AgentSandbox, find_cli, missing_reason
from tests.testing.runner import cli, conductor_argv, latest_run, run_json

pytestmark = [
    pytest.mark.slow,  # a real agent CLI per run, several seconds each
    pytest.mark.skipif(find_cli("claude") is None, reason=missing_reason("claude")),
]


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        yield srv


@pytest.fixture
def token() -> Iterator[str]:
    value = uuid.uuid4().hex
    yield value
    for pid in _carriers(value, None, {os.getpid()}):  # never leak, pass or fail
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def env(tmp_path: Path, server: ModelServer, token: str) -> dict[str, str]:
    return {**AgentSandbox.create(tmp_path, server.url).env(), TOKEN_VAR: token}


def background(pids: Path) -> Step:
    """The Bash tool call: two daemons out of the agent's reach, their pids recorded."""
    command = (
        f"setsid sleep 1000 >/dev/null 2>&1 & echo $! >> {pids}; "
        f"nohup sleep 1001 >/dev/null 2>&1 & echo $! >> {pids}; echo started"
    )
    return {"tool": "Bash", "input": {"command": command}}


def started(pids: Path) -> list[int]:
    return [int(p) for p in pids.read_text().split()] if pids.exists() else []


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")


def assert_nothing_left(repo: Path, token: str, pids: Path) -> None:
    assert len(started(pids)) == 2, "the agent never started its background processes"
    assert leftovers(repo, token) == []
    # and the two it started by name, whatever environment its Bash tool gave them
    assert [p for p in started(pids) if alive(p)] == []


def test_nothing_outlives_a_successful_claude_task(
    repo: Path, server: ModelServer, env: dict[str, str], token: str, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    server.add(background(pids), {"text": "Started them."})
    workflow(repo, "claude", "prompt: Start two servers in the background.")
    code, events, err = run_json(repo, "wf.yaml", env=env)
    assert code == 0, err + str([e["data"] for e in events if e["kind"] == "task_failed"])
    assert_nothing_left(repo, token, pids)


def test_nothing_outlives_a_claude_task_killed_by_idle_timeout(
    repo: Path, server: ModelServer, env: dict[str, str], token: str, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    server.add(background(pids), {"stall": True})
    workflow(repo, "claude", "prompt: Start two servers, then think.\nidle_timeout: 3s")
    code, events, err = run_json(repo, "wf.yaml", env=env)
    assert code == 1, err
    failed = [str(e["data"]) for e in events if e["kind"] == "task_failed"]
    assert failed and "no output" in failed[0]
    assert_nothing_left(repo, token, pids)


def test_nothing_outlives_a_cancelled_claude_task(
    repo: Path, server: ModelServer, env: dict[str, str], token: str, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    server.add(background(pids), {"stall": True})
    workflow(repo, "claude", "prompt: Start two servers, then think.")
    full = {**os.environ, **env}
    runner = subprocess.Popen([*conductor_argv(), "run", "wf.yaml", "--quiet"], cwd=repo,
                              env=full, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(started(pids)) < 2:
            assert runner.poll() is None, runner.communicate()
            assert time.monotonic() < deadline, "the agent never started its processes"
            time.sleep(0.1)
        cancel = cli(repo, "cancel", latest_run(repo), env=env)
        assert cancel.returncode == 0, cancel.stderr
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 1, out + err
    assert_nothing_left(repo, token, pids)
