"""Busy is not idle (issue 11): a silent command whose caller says it is busy (an agent's
tool call in flight) or whose processes use CPU outlives its idle limit; its timeout does
not spare it, and a silent command that only waits is still stopped as idle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conductor.exec import panes
from conductor.exec.base import ProcessResult
from conductor.exec.busy import CPU_SHARE, cpu_used
from conductor.exec.local import LocalExecutor
from conductor.exec.procs import cpu_times
from conductor.exec.tmux import TmuxExecutor
from tests.testing.requests import request

FAST = LocalExecutor(grace_s=0.3)
# burns CPU without a word for `s` seconds, then says so (no sleep: the CPU is the point)
SPIN = "import sys, time\nt = time.time()\nwhile time.time() - t < {s}: pass\nprint('spun')"


def run(tmp: Path, script: str, **kw: object) -> ProcessResult:
    kw.setdefault("log_path", tmp / "task.log")
    return FAST.run(request(["bash", "-c", script], tmp, **kw))


def notes(tmp: Path) -> list[str]:
    lines = (tmp / "task.log").read_text().splitlines()
    return [ln for ln in lines if ln.startswith("# conductor:") and "but busy" in ln]


def test_a_busy_callback_keeps_a_silent_command_from_the_idle_limit(tmp_path: Path) -> None:
    res = run(tmp_path, "echo start; sleep 1.6; echo end", idle_timeout_s=0.4, busy=lambda: True)
    assert res.ok, res
    # said once, though the clock restarted several times
    assert len(notes(tmp_path)) == 1 and "a tool call is in flight" in notes(tmp_path)[0]


def test_once_no_longer_busy_the_silence_is_idle_again(tmp_path: Path) -> None:
    done = threading.Event()
    threading.Timer(0.8, done.set).start()
    t0 = time.monotonic()
    res = run(tmp_path, "echo start; sleep 1000", idle_timeout_s=0.4,
              busy=lambda: not done.is_set())  # fmt: skip
    assert (res.reason, res.error) == ("idle", "no output for 0.4s")
    assert 0.8 <= time.monotonic() - t0 < 3


def test_timeout_still_stops_a_busy_command(tmp_path: Path) -> None:
    res = run(tmp_path, "sleep 1000", idle_timeout_s=0.3, timeout_s=1.0, busy=lambda: True)
    assert (res.reason, res.error) == ("timeout", "timed out after 1s")


def test_a_silent_command_using_cpu_is_busy_not_idle(tmp_path: Path) -> None:
    spin = SPIN.format(s=1.6)
    res = run(tmp_path, f"{sys.executable} -c \"{spin}\"", idle_timeout_s=0.5)
    assert res.ok, (res, (tmp_path / "task.log").read_text())
    assert len(notes(tmp_path)) == 1 and "of CPU" in notes(tmp_path)[0]


@pytest.mark.slow
def test_cpu_of_a_child_that_left_the_group_counts_through_the_marker(tmp_path: Path) -> None:
    # setsid: out of the group; the leader itself only waits
    spin = SPIN.format(s=1.6)
    script = f"setsid {sys.executable} -c \"{spin}\" > out.txt; wait; sleep 0.3; cat out.txt"
    res = run(tmp_path, script, idle_timeout_s=0.5, mark=f"test-busy/{os.getpid()}/{time.time()}")
    assert res.ok, (res, (tmp_path / "task.log").read_text())


def test_cpu_times_read_the_group_and_cpu_used_compares_samples() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SPIN.format(s=0.6)], start_new_session=True,
                            stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        before = cpu_times(proc.pid, None)
        time.sleep(0.4)
        after = cpu_times(proc.pid, None)
    finally:
        proc.wait()
    assert [k[0] for k in after] == [proc.pid]
    assert cpu_used(before, after) >= CPU_SHARE * 0.4
    assert cpu_used(after, before) == 0.0  # a process gone since counts nothing
    assert cpu_used({}, after) == after[(proc.pid, next(iter(after))[1])]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_tmux_executor_asks_the_same_before_calling_a_pane_idle(tmp_path: Path) -> None:
    socket = f"conductor-test-busy-{os.getpid()}"
    ex = TmuxExecutor("", "shell", socket=socket, poll_s=0.05, grace_s=0.3)
    try:
        res = ex.run(request(["sh", "-c", "sleep 1.6; echo done"], tmp_path, idle_timeout_s=0.4,
                             busy=lambda: True, log_path=tmp_path / "task.log"))  # fmt: skip
        assert (res.reason, res.exit_code) == ("exited", 0), res
        assert len(notes(tmp_path)) == 1
        res = ex.run(request(["sh", "-c", "sleep 1.6; echo done"], tmp_path, idle_timeout_s=0.4,
                             log_path=tmp_path / "idle.log"))  # fmt: skip
        assert res.reason == "idle", res
    finally:
        panes.tmux(socket, "kill-server")
