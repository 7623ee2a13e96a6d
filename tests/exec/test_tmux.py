"""The tmux executor with real tmux and a small interactive fake agent; `conductor attach`."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conductor.exec import panes
from conductor.exec.base import ProcessResult
from conductor.exec.panes import attach_argv, session_exists, session_name
from conductor.exec.tmux import TmuxExecutor
from conductor.state.store import Store
from tests.testing.paths import FAKES
from tests.testing.requests import request

pytestmark = [
    pytest.mark.slow,  # real tmux sessions, each waiting for a pane to settle
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

AGENT = FAKES / "interactive_agent"
SOCKET = f"conductor-test-{os.getpid()}"  # a server of our own: real runs are never touched
FAST: dict[str, Any] = {"send_delay_s": 0.1, "settle_s": 0.3, "poll_s": 0.05, "grace_s": 0.5}


@pytest.fixture(scope="module", autouse=True)
def _server() -> Iterator[None]:
    yield
    panes.tmux(SOCKET, "kill-server")


def executor(prompt: str, completion: str = "prompt", **kw: Any) -> TmuxExecutor:
    opts = {**FAST, "prompt_pattern": r"^>$" if completion == "prompt" else None, **kw}
    return TmuxExecutor(prompt, completion, socket=SOCKET, **opts)  # type: ignore[arg-type]


def agent_env(**extra: str) -> dict[str, str]:
    run = "t" + uuid.uuid4().hex[:8]
    return {**os.environ, "CONDUCTOR_RUN_ID": run, "CONDUCTOR_TASK_ID": "T.1",
            "CONDUCTOR_ATTEMPT": "1", **extra}  # fmt: skip


def drive(
    tmp: Path, ex: TmuxExecutor, *args: str, env: dict[str, str] | None = None, **kw: Any
) -> ProcessResult:
    kw.setdefault("timeout_s", 15.0)
    argv = [sys.executable, str(AGENT), *args]
    return ex.run(request(argv, tmp, env=env or agent_env(), log_path=tmp / "agent.log", **kw))


def log_body(tmp: Path) -> list[str]:
    lines = (tmp / "agent.log").read_text().splitlines()
    return [ln for ln in lines if not ln.startswith("# conductor:")]


def live_members(pgid: int) -> list[int]:
    """Processes of the group that are still running (zombies do not count)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                raw = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            fields = raw[raw.rfind(b")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                found.append(int(name))
    return found


def sessions() -> str:
    return panes.tmux(SOCKET, "list-sessions", "-F", "#{session_name}").stdout


# ---------------------------------------------------------------- names


def test_session_names_are_valid_tmux_targets_and_distinct() -> None:
    dotted = session_name("20250101-120000-ab12", "api.v2:x", 3)
    assert "." not in dotted and ":" not in dotted
    assert dotted.startswith("conductor-20250101-120000-ab12-api_v2_x-3")
    assert session_name("r", "a.b", 1) != session_name("r", "a_b", 1)
    assert session_name("r", "T1", 1) == "conductor-r-T1-1"
    assert attach_argv("r", "T1", 2) == [
        "tmux",
        "-L",
        "conductor",
        "attach",
        "-t",
        "=conductor-r-T1-2",
    ]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="prompt_pattern"):
        TmuxExecutor("x", "prompt", None)
    with pytest.raises(ValueError, match="completion"):
        TmuxExecutor("x", "wait")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bad prompt_pattern"):
        TmuxExecutor("x", "prompt", "(")


# ---------------------------------------------------------------- the three completion modes


def test_prompt_mode_drives_the_agent_to_its_next_prompt(tmp_path: Path) -> None:
    started: list[int] = []
    env = agent_env()
    res = drive(tmp_path, executor("hello.txt hi there"), env=env,
                on_start=lambda pid, _t: started.append(pid))  # fmt: skip
    assert res.ok, res
    assert (tmp_path / "hello.txt").read_text() == "hi there\n"
    body = log_body(tmp_path)
    assert body[:2] == ["fake interactive agent", "> hello.txt hi there"]
    assert body[-2:] == ["wrote hello.txt", ">"]
    assert started == [res.pid]
    assert res.pid is not None and live_members(res.pid) == []
    name = session_name(env["CONDUCTOR_RUN_ID"], "T.1", 1)
    assert name not in sessions()
    assert f"tmux session {name}" in (tmp_path / "agent.log").read_text()


def test_prompt_mode_waits_for_the_agent_to_be_ready(tmp_path: Path) -> None:
    # The agent discards input typed before its first prompt, which comes 0.8 s late.
    res = drive(tmp_path, executor("late.txt"), "--banner-delay", "0.8")
    assert res.ok, res
    assert (tmp_path / "late.txt").exists()


def test_idle_mode_finishes_when_the_pane_stops_changing(tmp_path: Path) -> None:
    env = agent_env(FAKE_AGENT_STEPS="6", FAKE_AGENT_STEP_S="0.2")  # 1.2 s of progress lines
    t0 = time.monotonic()
    ticks: list[tuple[float, float]] = []
    res = drive(tmp_path, executor("slow.txt", "idle", idle_s=0.6), env=env,
                on_tick=lambda elapsed, quiet: ticks.append((elapsed, quiet)))  # fmt: skip
    assert res.ok, res
    assert ticks and all(elapsed >= 1.0 and quiet <= elapsed for elapsed, quiet in ticks)
    assert (tmp_path / "slow.txt").exists()  # not taken as finished between progress lines
    assert time.monotonic() - t0 >= 1.2 + 0.6
    assert "step 6/6" in log_body(tmp_path)
    assert "pane unchanged for 0.6s: finished" in (tmp_path / "agent.log").read_text()


def test_shell_mode_reports_the_agents_real_exit_code(tmp_path: Path) -> None:
    ok = drive(tmp_path, executor("done.txt", "shell"), "--once")
    assert ok.ok and ok.exit_code == 0, ok
    assert (tmp_path / "done.txt").exists()
    assert "__CONDUCTOR_EXIT=0" in log_body(tmp_path)

    failed = drive(tmp_path, executor("fail 3", "shell"))
    assert (failed.reason, failed.exit_code, failed.ok) == ("exited", 3, False)
    assert "error: failing with status 3" in log_body(tmp_path)


def test_shell_mode_runs_a_non_interactive_command_without_a_prompt(tmp_path: Path) -> None:
    ex = executor("", "shell")
    res = ex.run(request(["sh", "-c", "echo some output; exit 5"], tmp_path, env=agent_env(),
                 log_path=tmp_path / "agent.log", timeout_s=10))  # fmt: skip
    assert (res.reason, res.exit_code) == ("exited", 5)
    assert "some output" in log_body(tmp_path)


def test_an_agent_that_exits_ends_the_attempt_with_its_status(tmp_path: Path) -> None:
    res = drive(tmp_path, executor("fail 4"))  # prompt mode: no prompt follows, the pane dies
    assert (res.reason, res.exit_code) == ("exited", 4), res


def test_a_full_screen_agent_is_logged_up_to_the_redraw_plus_its_final_screen(
    tmp_path: Path,
) -> None:
    script = "echo one; echo two; sleep 0.3; printf '\\033[?1049h'; echo on-alt-screen; sleep 0.3"
    res = executor("", "shell").run(request(["sh", "-c", script], tmp_path, env=agent_env(),
                                    log_path=tmp_path / "agent.log", timeout_s=10))  # fmt: skip
    assert res.ok, res
    lines = (tmp_path / "agent.log").read_text().splitlines()
    note = "# conductor: the agent redrew its screen; its final screen:"
    assert lines.index("one") < lines.index(note) < lines.index("on-alt-screen")


def test_a_stale_session_of_the_same_attempt_is_replaced(tmp_path: Path) -> None:
    env = agent_env()
    name = session_name(env["CONDUCTOR_RUN_ID"], "T.1", 1)
    panes.tmux(SOCKET, "new-session", "-d", "-s", name, "sleep", "60")
    old = int(panes.tmux(SOCKET, "display-message", "-p", "-t", f"={name}:", "#{pane_pid}").stdout)
    res = drive(tmp_path, executor("fresh.txt"), env=env)
    assert res.ok and (tmp_path / "fresh.txt").exists(), res
    assert live_members(old) == []
    assert "removing a stale tmux session" in (tmp_path / "agent.log").read_text()


def test_kill_run_sessions_ends_every_session_of_a_run_and_no_other(tmp_path: Path) -> None:
    ours = [session_name("r-kill", task, 1) for task in ("T1", "T.2")]
    other = session_name("r-kill2", "T1", 1)
    for name in (*ours, other):
        panes.tmux(SOCKET, "new-session", "-d", "-s", name, "sleep", "60")
    pids = [int(panes.tmux(SOCKET, "display-message", "-p", "-t", f"={n}:", "#{pane_pid}").stdout)
            for n in ours]  # fmt: skip
    assert sorted(panes.kill_run_sessions("r-kill", socket=SOCKET)) == sorted(ours)
    assert all(live_members(pid) == [] for pid in pids)
    assert sessions().split() == [other]
    panes.tmux(SOCKET, "kill-session", "-t", "=" + other)


# ---------------------------------------------------------------- limits


def test_timeout_kills_the_session_and_every_process_of_the_pane(tmp_path: Path) -> None:
    env = agent_env()
    res = drive(tmp_path, executor("sleep 60"), env=env, timeout_s=1.0)  # agent + child sleep
    assert (res.reason, res.exit_code) == ("timeout", None)
    assert res.error == "timed out after 1s"
    assert res.pid is not None and live_members(res.pid) == []
    assert not session_exists(session_name(env["CONDUCTOR_RUN_ID"], "T.1", 1), SOCKET)
    assert "# conductor: timeout, exit code None" in (tmp_path / "agent.log").read_text()


def test_idle_timeout_stops_an_agent_whose_pane_never_changes(tmp_path: Path) -> None:
    res = drive(tmp_path, executor("sleep 60"), idle_timeout_s=0.8)
    assert res.reason == "idle"
    assert res.pid is not None and live_members(res.pid) == []


def test_cancel_and_kill_now_stop_the_agent(tmp_path: Path) -> None:
    for kind in ("cancel", "kill_now"):
        event = threading.Event()
        threading.Timer(0.8, event.set).start()
        t0 = time.monotonic()
        limit: dict[str, Any] = {kind: event}
        res = drive(tmp_path, executor("sleep 60"), **limit)
        assert res.reason == "cancelled", (kind, res)
        assert time.monotonic() - t0 < 5
        assert res.pid is not None and live_members(res.pid) == []


def test_start_failures_create_no_session(tmp_path: Path) -> None:
    before = sessions()
    ex = executor("x")
    res = ex.run(request(["no-such-agent-xyz"], tmp_path, env=agent_env(), log_path=None))
    assert (res.reason, res.error) == ("start_failed", "executable not found: no-such-agent-xyz")
    res = ex.run(request(["sh"], tmp_path / "missing", env=agent_env(), log_path=None))
    assert res.reason == "start_failed" and "working directory not found" in res.error
    assert sessions() == before


# ---------------------------------------------------------------- environment and log


def test_the_agent_gets_exactly_the_given_environment_and_secrets_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAKY_VAR", "from-conductor")  # in conductor's env, not the agent's
    env = agent_env(SECRET_TOKEN="s3cret-value")
    env.pop("LEAKY_VAR")
    seen: list[str] = []
    res = drive(tmp_path, executor("env SECRET_TOKEN LEAKY_VAR TMUX"), env=env,
                redact=lambda s: s.replace("s3cret-value", "***"), on_line=seen.append)  # fmt: skip
    assert res.ok, res
    body = log_body(tmp_path)
    assert "SECRET_TOKEN=***" in body and "LEAKY_VAR is unset" in body
    assert any(ln.startswith("TMUX=") for ln in body)  # it runs inside tmux
    assert "s3cret" not in (tmp_path / "agent.log").read_text()
    assert seen == body
    # the file that carried the environment into the pane is gone
    leftovers = Path(tempfile.gettempdir()).glob("conductor-env-*.json")
    assert not any("s3cret-value" in p.read_text(errors="replace") for p in leftovers)


# ---------------------------------------------------------------- conductor attach


def attach_cli(repo: Path, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    # The command module registers itself on the app when imported.
    code = "from conductor.cli import attach_cmd; from conductor.cli.app import app; app()"
    env = {**os.environ, "TERM": "xterm"}
    return subprocess.Popen([sys.executable, "-c", code, "attach", *args], cwd=repo, env=env,
                            **popen)  # fmt: skip


@pytest.fixture
def recorded_run(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    (repo / ".conductor").mkdir(parents=True)
    run_id = "t" + uuid.uuid4().hex[:10]
    with Store(repo / ".conductor" / "state.db") as store:
        store.create_run(run_id, "wf.yaml", "wf", "conductor/wf", {},
                         [("T1", None, "agent", "running", "h")])  # fmt: skip
        store.add_attempt(run_id, "T1", 1, state="running")
    return repo, run_id


def test_attach_without_a_live_session_says_so(recorded_run: tuple[Path, str]) -> None:
    repo, run_id = recorded_run
    proc = attach_cli(repo, run_id, "T1", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert b"no live tmux session for T1" in err
    proc = attach_cli(repo, run_id, "T9", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.communicate(timeout=30)[1].startswith(b"error: no task `T9`")
    assert proc.returncode == 2


def test_attach_puts_a_terminal_on_the_agents_session(recorded_run: tuple[Path, str]) -> None:
    repo, run_id = recorded_run
    name = session_name(run_id, "T1", 1)
    panes.tmux("conductor", "new-session", "-d", "-s", name, "sleep", "60")
    master, slave = os.openpty()
    try:
        proc = attach_cli(repo, run_id, "T1", stdin=slave, stdout=slave, stderr=slave,
                          start_new_session=True)  # fmt: skip
        assert wait_attached(name, master), "the attach client never attached"
        panes.tmux("conductor", "kill-session", "-t", "=" + name)
        proc.wait(timeout=10)  # the client leaves once the session is gone
    finally:
        panes.tmux("conductor", "kill-session", "-t", "=" + name)
        os.close(master)
        os.close(slave)


def wait_attached(name: str, master: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([master], [], [], 0.05)[0]:
            os.read(master, 65536)  # keep the client's terminal output flowing
        fmt = "#{session_attached}"
        out = panes.tmux("conductor", "display-message", "-p", "-t", f"={name}:", fmt).stdout
        if out.strip() == "1":
            return True
    return False
