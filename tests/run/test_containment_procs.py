"""Every process an attempt starts ends with the attempt (issue 11), end to end.

A shell task that leaves its process group (setsid, a double fork into a new session) and
ignores TERM; after each ending of the real `conductor run` (success, timeout, idle
timeout, `conductor cancel`, Ctrl-C, kill -9 then `resume`) no such process runs: neither
one carrying the run's process marker nor any carrying the token the test put in the
runner's environment (which catches leaks on code without markers, too). The same for a
hanging validator stopped by Ctrl-C and for a hook that starts a daemon.
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

from tests.testing.runner import cli, conductor_argv, latest_run, task_states, write_workflow

MARK_VAR = "CONDUCTOR_PROCESS_MARK"
TOKEN_VAR = "CONTAINMENT_TEST_TOKEN"
HOSTILE = "setsid sleep 1000 & ( ( sleep 1000 & ) & ); (trap '' TERM; exec sleep 1000) & "
QUICK = "setsid sleep 1000 & ( ( sleep 1000 & ) & ); "  # without the TERM-ignoring child


def _carriers(token: str, run: str | None, spare: set[int]) -> list[int]:
    """Live processes (zombies ignored) with the test's token or the run's marker."""
    keys = [f"{TOKEN_VAR}={token}".encode()]
    if run:
        keys.append(f"{MARK_VAR}={run}/".encode())
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if pid not in spare and state != b"Z" and any(e.startswith(k) for e in env for k in keys):
            found.append(pid)
    return found


@pytest.fixture
def token() -> Iterator[str]:
    value = uuid.uuid4().hex
    yield value
    for pid in _carriers(value, None, {os.getpid()}):  # never leak, pass or fail
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def leftovers(repo: Path, token: str, spare: set[int] | None = None) -> list[int]:
    """What still runs once conductor is done; a moment for the kernel to finish KILLs."""
    run = latest_run(repo)
    left = _carriers(token, run, {os.getpid(), *(spare or set())})
    deadline = time.monotonic() + 1.0
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = _carriers(token, run, {os.getpid(), *(spare or set())})
    return left


def start(repo: Path, token: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, TOKEN_VAR: token}
    return subprocess.Popen([*conductor_argv(), *args], cwd=repo, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def wait_for(path: Path, proc: subprocess.Popen[str] | None = None, limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        assert proc is None or proc.poll() is None, proc.communicate() if proc else ""
        time.sleep(0.05)


def task(repo: Path, cmd: str, extra: str = "") -> None:
    write_workflow(repo, f"""
        version: 1
        name: t
        defaults: {{retries: 0}}
        tasks:
          LEAKY: {{run: {cmd!r}{extra}}}
    """)  # fmt: skip


def test_nothing_outlives_a_successful_task(repo: Path, token: str) -> None:
    task(repo, QUICK + "echo done > done.txt")
    proc = cli(repo, "run", "wf.yaml", env={TOKEN_VAR: token})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert leftovers(repo, token) == []


def test_a_hook_that_starts_a_daemon_leaves_nothing(repo: Path, token: str) -> None:
    write_workflow(repo, """
        version: 1
        name: t
        on: {task_completed: [bash, -c, "setsid sleep 1000 > /dev/null 2>&1 & sleep 0.3; echo hooked"]}
        tasks:
          A: {run: "echo a > a.txt"}
    """)  # fmt: skip
    proc = cli(repo, "run", "wf.yaml", env={TOKEN_VAR: token})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert leftovers(repo, token) == []


@pytest.mark.slow
def test_nothing_outlives_a_successful_task_that_ignores_term(repo: Path, token: str) -> None:
    task(repo, HOSTILE + "echo done > done.txt")
    proc = cli(repo, "run", "wf.yaml", env={TOKEN_VAR: token})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert leftovers(repo, token) == []


@pytest.mark.slow
@pytest.mark.parametrize("limit", ["timeout: 2s", "idle_timeout: 1s"])
def test_nothing_outlives_a_timed_out_task(repo: Path, token: str, limit: str) -> None:
    task(repo, HOSTILE + "sleep 1000", ", " + limit)
    proc = cli(repo, "run", "wf.yaml", env={TOKEN_VAR: token}, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert task_states(repo)["LEAKY"] == "failed"
    assert leftovers(repo, token) == []


@pytest.mark.slow
def test_nothing_outlives_conductor_cancel(repo: Path, token: str, tmp_path: Path) -> None:
    started = tmp_path / "started"
    task(repo, HOSTILE + f"touch {started}; sleep 1000")
    runner = start(repo, token, "run", "wf.yaml")
    wait_for(started, runner)
    cancel = cli(repo, "cancel", latest_run(repo))
    assert cancel.returncode == 0, cancel.stderr
    runner.communicate(timeout=30)
    assert leftovers(repo, token) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_nothing_outlives_ctrl_c_or_sigterm(
    repo: Path, token: str, tmp_path: Path, sig: signal.Signals
) -> None:
    started = tmp_path / "started"
    task(repo, HOSTILE + f"touch {started}; sleep 1000")
    runner = start(repo, token, "run", "wf.yaml")
    wait_for(started, runner)
    runner.send_signal(sig)
    runner.communicate(timeout=30)
    assert runner.returncode == 130 if sig == signal.SIGINT else runner.returncode != 0
    assert task_states(repo)["LEAKY"] == "interrupted"
    assert leftovers(repo, token) == []


@pytest.mark.slow
def test_resume_after_kill_9_stops_what_the_dead_runner_left(
    repo: Path, token: str, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    # the first attempt hangs; the one resume starts finishes at once
    task(repo, QUICK + f"if [ ! -e {started} ]; then touch {started}; exec sleep 1000; fi")
    runner = start(repo, token, "run", "wf.yaml")
    wait_for(started, runner)
    time.sleep(0.3)
    runner.kill()
    runner.communicate()
    assert leftovers(repo, token)  # the dead runner's orphans are still there...
    resumed = start(repo, token, "resume", latest_run(repo))
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, out + err
    assert leftovers(repo, token) == []  # ...and resume stopped every one of them


@pytest.mark.slow
def test_a_hanging_validator_obeys_ctrl_c(repo: Path, token: str, tmp_path: Path) -> None:
    started = tmp_path / "started"
    validator = f"setsid sleep 1000 & touch {started}; sleep 1000"
    task(repo, "echo a > a.txt", f", validate: [{{run: {validator!r}}}]")
    runner = start(repo, token, "run", "wf.yaml")
    wait_for(started, runner)
    t0 = time.monotonic()
    runner.send_signal(signal.SIGINT)
    try:
        runner.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        runner.kill()
        runner.communicate()
        pytest.fail("the runner ignored Ctrl-C while a validator hung")
    assert time.monotonic() - t0 < 8
    assert runner.returncode == 130
    assert task_states(repo)["LEAKY"] == "interrupted"
    assert leftovers(repo, token) == []


DAEMON = "setsid sleep 1000 > /dev/null 2>&1 & sleep 0.3"  # time to leave the group


@pytest.mark.slow
@pytest.mark.parametrize("where", ["setup", "validator", "gate"])
def test_setup_commands_validators_and_gates_leave_nothing(
    repo: Path, token: str, where: str
) -> None:
    check = f"[{{run: {DAEMON!r}}}]"
    write_workflow(repo, f"""
        version: 1
        name: t
        workspace: {{setup: [{DAEMON if where == "setup" else "true"!r}]}}
        groups:
          G: {{validate: {check if where == "gate" else "[]"}}}
        tasks:
          A: {{run: "echo a > a.txt", group: G, validate: {check if where == "validator" else "[]"}}}
    """)  # fmt: skip
    proc = cli(repo, "run", "wf.yaml", env={TOKEN_VAR: token})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert leftovers(repo, token) == []
