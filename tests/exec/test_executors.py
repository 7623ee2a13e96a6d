"""The local executor with real processes: exit codes, logs, limits, cancellation, cleanup."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conductor.exec.base import ProcessResult
from conductor.exec.local import LocalExecutor
from conductor.exec.procs import process_alive, process_start_time, stop_tree
from tests.testing.requests import request

FAST = LocalExecutor(grace_s=0.3)


def run(tmp: Path, script: str, ex: LocalExecutor = FAST, **kw: object) -> ProcessResult:
    kw.setdefault("log_path", tmp / "task.log")
    return ex.run(request(["bash", "-c", script], tmp, **kw))


def body(log: Path) -> list[str]:
    """The process's own lines: the log without conductor's header and footer."""
    return [ln for ln in log.read_text().splitlines() if not ln.startswith("# conductor:")]


def wait_until(cond: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def set_later(event: threading.Event, delay: float) -> None:
    threading.Timer(delay, event.set).start()


# ---------------------------------------------------------------- exit, output, env, cwd


def test_exit_codes_are_reported(tmp_path: Path) -> None:
    ok = run(tmp_path, "true")
    assert (ok.exit_code, ok.reason, ok.error, ok.ok) == (0, "exited", "", True)
    failed = run(tmp_path, "exit 3")
    assert (failed.exit_code, failed.reason, failed.ok) == (3, "exited", False)
    assert failed.pid is not None and failed.duration_s < 5


def test_output_reaches_the_log_in_order_with_header_and_footer(tmp_path: Path) -> None:
    log = tmp_path / "deep" / "dir" / "task.log"  # parent dirs are created
    run(tmp_path, "echo one; echo two >&2; printf 'three\\nfour'", log_path=log)
    lines = log.read_text().splitlines()
    assert lines[0].startswith("# conductor: started ") and "bash -c" in lines[0]
    assert str(tmp_path) in lines[0]
    assert lines[1:5] == ["one", "two", "three", "four"]  # partial last line kept
    assert lines[5].startswith("# conductor: exited, exit code 0")


def test_log_is_appended_across_runs(tmp_path: Path) -> None:
    run(tmp_path, "echo first")
    run(tmp_path, "echo second")
    assert body(tmp_path / "task.log") == ["first", "second"]


def test_long_lines_and_invalid_utf8_are_logged_intact(tmp_path: Path) -> None:
    run(tmp_path, "head -c 300000 /dev/zero | tr '\\0' x; echo; printf 'bad \\377 byte\\n'")
    lines = body(tmp_path / "task.log")
    assert "".join(lines[:-1]) == "x" * 300000  # split in bounded pieces, nothing lost
    assert lines[-1] == "bad \ufffd byte"


def test_env_is_the_complete_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAKED_FROM_PARENT", "1")
    env = {"PATH": os.environ["PATH"], "GREETING": "hello"}
    run(tmp_path, 'echo "$GREETING ${LEAKED_FROM_PARENT:-absent}"', env=env)
    assert body(tmp_path / "task.log") == ["hello absent"]


def test_cwd_is_respected(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    FAST.run(request(["pwd"], work, log_path=tmp_path / "pwd.log"))
    assert body(tmp_path / "pwd.log") == [str(work)]


def test_stdin_is_closed_so_readers_do_not_block(tmp_path: Path) -> None:
    res = run(tmp_path, "cat; echo after-cat", timeout_s=5)
    assert res.ok and body(tmp_path / "task.log") == ["after-cat"]


def test_without_a_log_file_output_reaches_on_line(tmp_path: Path) -> None:
    seen: list[str] = []
    res = run(tmp_path, "echo a; echo b", log_path=None, on_line=seen.append)
    assert res.ok and seen == ["a", "b"]


# ---------------------------------------------------------------- callbacks and secrets


def test_secrets_never_reach_the_log(tmp_path: Path) -> None:
    seen: list[str] = []
    res = FAST.run(
        request(
            ["bash", "-c", "echo token=hunter2; echo fine", "--api-key=hunter2"],
            tmp_path,
            env=dict(os.environ),
            log_path=tmp_path / "task.log",
            on_line=seen.append,
            redact=lambda s: s.replace("hunter2", "***"),
        )
    )
    assert res.ok
    text = (tmp_path / "task.log").read_text()
    assert "hunter2" not in text and "--api-key=***" in text
    assert seen == ["token=***", "fine"]


def test_on_start_reports_a_live_pid_and_its_start_time(tmp_path: Path) -> None:
    started: list[tuple[int, float, bool]] = []
    res = run(
        tmp_path,
        "sleep 0.1",
        on_start=lambda pid, t: started.append((pid, t, process_alive(pid, t))),
    )
    assert started == [(res.pid, started[0][1], True)]
    assert abs(started[0][1] - time.time()) < 5


@pytest.mark.slow
def test_progress_ticks_and_chatty_process_is_not_idle(tmp_path: Path) -> None:
    ticks: list[tuple[float, float]] = []
    script = "for i in 1 2 3 4 5 6; do echo $i; sleep 0.2; done"
    res = run(tmp_path, script, idle_timeout_s=0.6, on_tick=lambda e, i: ticks.append((e, i)))
    assert res.ok, res
    assert body(tmp_path / "task.log") == ["1", "2", "3", "4", "5", "6"]
    assert ticks and all(e >= 0.9 and i < 0.6 for e, i in ticks)


# ---------------------------------------------------------------- limits and cancellation


@pytest.mark.slow
def test_timeout_kills_the_whole_group_including_grandchildren(tmp_path: Path) -> None:
    script = "sleep 1000 & echo $! > grandchild.pid; sleep 1000"
    res = run(tmp_path, script, timeout_s=0.5)
    assert (res.reason, res.exit_code, res.error) == ("timeout", None, "timed out after 0.5s")
    assert 0.5 <= res.duration_s < 3
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    assert not process_alive(grandchild)
    assert res.pid is not None
    assert wait_until(lambda: group_gone(res.pid))  # once init has reaped the orphans
    assert "timed out after 0.5s" in (tmp_path / "task.log").read_text()


def test_idle_timeout_stops_a_silent_process(tmp_path: Path) -> None:
    res = run(tmp_path, "echo started; sleep 1000", idle_timeout_s=0.3)
    assert (res.reason, res.exit_code, res.error) == ("idle", None, "no output for 0.3s")
    assert res.duration_s < 2


def test_cancel_terms_the_group_which_may_exit_cleanly(tmp_path: Path) -> None:
    cancel = threading.Event()
    set_later(cancel, 0.2)
    ex = LocalExecutor(grace_s=5)
    script = "trap 'echo cleaning up; exit 3' TERM; sleep 1000 & wait"
    res = run(tmp_path, script, ex, cancel=cancel)
    assert (res.reason, res.exit_code) == ("cancelled", None)
    assert res.duration_s < 2  # TERM was honoured: no need to wait for the grace period
    assert "cleaning up" in body(tmp_path / "task.log")


def test_cancel_kills_after_grace_when_term_is_ignored(tmp_path: Path) -> None:
    cancel = threading.Event()
    set_later(cancel, 0.1)
    res = run(tmp_path, "trap '' TERM; sleep 1000", cancel=cancel)
    assert (res.reason, res.exit_code) == ("cancelled", None)
    assert 0.1 + 0.3 <= res.duration_s < 3
    assert res.pid is not None and not process_alive(res.pid)


def test_kill_now_does_not_wait_for_the_grace_period(tmp_path: Path) -> None:
    kill_now = threading.Event()
    set_later(kill_now, 0.1)
    res = run(tmp_path, "trap '' TERM; sleep 1000", LocalExecutor(grace_s=30), kill_now=kill_now)
    assert (res.reason, res.exit_code) == ("cancelled", None)
    assert res.duration_s < 2


def test_cancelled_before_start_starts_nothing(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    res = run(tmp_path, "touch started", cancel=cancel)
    assert (res.reason, res.pid) == ("cancelled", None)
    assert not (tmp_path / "started").exists()


# ---------------------------------------------------------------- leftovers and failures to start


def test_leftover_children_are_killed_after_the_leader_exits(tmp_path: Path) -> None:
    res = run(tmp_path, "sleep 1000 >/dev/null 2>&1 & echo $! > child.pid; echo done")
    assert res.ok and body(tmp_path / "task.log") == ["done"]
    assert not process_alive(int((tmp_path / "child.pid").read_text()))


def test_a_grandchild_holding_the_pipe_does_not_hang_the_run(tmp_path: Path) -> None:
    res = run(tmp_path, "(sleep 1000 &); echo done", timeout_s=30)
    assert res.ok and res.duration_s < 2
    assert body(tmp_path / "task.log") == ["done"]


def test_a_pipe_held_outside_the_group_does_not_hang_the_run(tmp_path: Path) -> None:
    t0 = time.monotonic()
    res = run(tmp_path, "setsid sleep 1000 & echo $! > escaped.pid; echo done")
    pid = int((tmp_path / "escaped.pid").read_text())
    try:
        assert res.ok and time.monotonic() - t0 < 3
        assert body(tmp_path / "task.log") == ["done"]
    finally:
        os.kill(pid, 9)  # it left our group on purpose: conductor cannot reach it


def test_a_failing_callback_does_not_leave_the_process_running(tmp_path: Path) -> None:
    def on_line(line: str) -> None:
        raise RuntimeError("progress parser broke")

    script = "sleep 1000 & echo $! > child.pid; echo $$ > leader.pid; echo go; sleep 1000"
    with pytest.raises(RuntimeError):
        run(tmp_path, script, on_line=on_line)
    for name in ("child.pid", "leader.pid"):
        assert not process_alive(int((tmp_path / name).read_text()))


@pytest.mark.parametrize(
    ("argv", "cwd", "error"),
    [
        (["no-such-agent-xyz", "-p"], None, "executable not found: no-such-agent-xyz"),
        (["true"], "missing", "working directory not found"),
        ([], None, "empty command"),
    ],
)
def test_start_failures_are_results_not_exceptions(
    tmp_path: Path, argv: list[str], cwd: str | None, error: str
) -> None:
    where = tmp_path / cwd if cwd else tmp_path
    res = FAST.run(request(argv, where, env=dict(os.environ), log_path=tmp_path / "t.log"))
    assert (res.reason, res.exit_code, res.pid) == ("start_failed", None, None)
    assert res.error.startswith(error)
    assert error in (tmp_path / "t.log").read_text()


def test_concurrent_runs_keep_their_output_apart(tmp_path: Path) -> None:
    results: dict[int, ProcessResult] = {}

    def one(i: int) -> None:
        results[i] = run(
            tmp_path, f"for j in 1 2 3; do echo task{i}-$j; done", log_path=tmp_path / f"{i}.log"
        )

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(8):
        assert results[i].ok
        assert body(tmp_path / f"{i}.log") == [f"task{i}-1", f"task{i}-2", f"task{i}-3"]


# ---------------------------------------------------------------- process helpers


def test_process_alive_detects_exit_zombies_and_pid_reuse() -> None:
    me, started = os.getpid(), process_start_time(os.getpid())
    assert started is not None and abs(started - time.time()) < 24 * 3600 * 365
    assert process_alive(me) and process_alive(me, started)
    assert not process_alive(me, started - 100)  # same pid, different process
    proc = subprocess.Popen(["true"])
    assert wait_until(lambda: not process_alive(proc.pid))  # a zombie is not alive
    proc.wait()
    assert not process_alive(proc.pid)
    assert not process_alive(0) and not process_alive(-5)


def test_stop_tree_escalates_and_tolerates_gone_groups(tmp_path: Path) -> None:
    proc = subprocess.Popen(["bash", "-c", "trap '' TERM; sleep 1000"], start_new_session=True)
    time.sleep(0.1)  # let bash install the trap
    t0 = time.monotonic()
    stop_tree(proc.pid, 0.2)
    assert proc.wait(timeout=5) == -9
    assert 0.2 <= time.monotonic() - t0 < 2
    stop_tree(proc.pid, 0.2)  # already gone: no error
    with pytest.raises(ValueError):
        stop_tree(os.getpgrp(), 0.0)
