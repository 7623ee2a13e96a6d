"""Every process a command starts ends with the command (issue 11): the marker sweep.

Real processes that leave the command's process group (setsid, a double fork into a new
session) or ignore TERM; after every kind of ending, no process carrying the marker runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor.exec.base import MARK_VAR, Limits, Request
from conductor.exec.local import LocalExecutor
from conductor.exec.sweep import new_mark, sweep
from tests.testing.paths import ROOT

FAST = LocalExecutor(grace_s=0.3)
# leaves the group three ways, then holds the command for as long as the test wants
HOSTILE = (
    "setsid sleep 1000 & "
    "( ( sleep 1000 & ) & ); "
    "( setsid sh -c \"trap '' TERM; sleep 1000\" & ); "
    "(trap '' TERM; exec sleep 1000) & "
)


def carrying(value: str) -> list[int]:
    """Live (non-zombie) processes whose environment holds ``MARK_VAR=value...``; read
    from /proc here, independently of the code under test."""
    key = f"{MARK_VAR}={value}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z" and any(e.startswith(key) for e in env) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


@pytest.fixture
def mark() -> Iterator[str]:
    # a run part of its own: test runs side by side never sweep each other's processes
    value = new_mark(f"test-sweep-{uuid.uuid4().hex[:8]}", "T", "1")
    yield value
    for pid in carrying(value):  # never leak into the next test, pass or fail
        os.kill(pid, signal.SIGKILL)


def request(tmp_path: Path, cmd: str, mark: str, **kw: object) -> Request:
    return Request(["bash", "-c", cmd], cwd=tmp_path, env=dict(os.environ), mark=mark, **kw)  # type: ignore[arg-type]


def test_the_marker_reaches_the_command(tmp_path: Path, mark: str) -> None:
    lines: list[str] = []
    res = FAST.run(request(tmp_path, f'echo "${MARK_VAR}"', mark, on_line=lines.append))
    assert res.ok and lines == [mark]


@pytest.mark.parametrize("ending", ["exited", "failed", "timeout", "idle", "cancel", "kill_now"])
def test_nothing_outlives_the_command(tmp_path: Path, mark: str, ending: str) -> None:
    cancel, kill_now = threading.Event(), threading.Event()
    tail = {"exited": "true", "failed": "exit 3"}.get(ending, "sleep 1000")
    limits = Limits(timeout_s=0.5 if ending == "timeout" else None,
                    idle_s=0.5 if ending == "idle" else None)  # fmt: skip
    if ending in ("cancel", "kill_now"):
        threading.Timer(0.5, (cancel if ending == "cancel" else kill_now).set).start()
    req = request(tmp_path, HOSTILE + tail, mark, limits=limits, cancel=cancel, kill_now=kill_now)
    t0 = time.monotonic()
    res = FAST.run(req)
    assert time.monotonic() - t0 < 6
    assert res.reason == {"failed": "exited", "cancel": "cancelled",
                          "kill_now": "cancelled"}.get(ending, ending)  # fmt: skip
    assert carrying(mark) == []


def test_a_start_failure_still_sweeps(tmp_path: Path, mark: str) -> None:
    # a process of the same attempt left by an earlier command is swept by this one's end
    stray = subprocess.Popen(["sleep", "1000"], env={**os.environ, MARK_VAR: mark},
                             start_new_session=True)  # fmt: skip
    res = FAST.run(Request(["/nonexistent/agent"], cwd=tmp_path, env={}, mark=mark))
    assert res.reason == "start_failed"
    stray.wait(timeout=5)
    assert carrying(mark) == []


def test_sweep_by_prefix_stops_term_ignoring_processes(mark: str) -> None:
    run = mark.split("/")[0] + "/"
    procs = [
        subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 1000"],
                         env={**os.environ, MARK_VAR: f"{mark}/{i}"}, start_new_session=True)
        for i in range(3)
    ]  # fmt: skip
    other = subprocess.Popen(["sleep", "1000"], env={**os.environ, MARK_VAR: "other-run/T/1/x"})
    try:
        deadline = time.monotonic() + 5
        while len(carrying(run)) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        t0 = time.monotonic()
        assert len(sweep(run, 0.3)) >= 3
        assert time.monotonic() - t0 < 4
        for p in procs:
            p.wait(timeout=5)
        assert carrying(run) == []
        assert other.poll() is None  # another run's process is not touched
    finally:
        other.kill()
        other.wait()


def test_the_runner_as_subreaper_reaps_the_orphans_it_gets(tmp_path: Path) -> None:
    """In a child Python (becoming a subreaper is for the whole process): a command whose
    double-forked grandchild outlives it; the orphan comes to the runner, is swept, and is
    reaped, so no zombie is left behind."""
    script = f"""
import os, sys
from pathlib import Path
from conductor.exec.base import Request
from conductor.exec.local import LocalExecutor
from conductor.exec.sweep import become_subreaper, new_mark
assert become_subreaper()
mark = new_mark("reap", "T", "1")
for _ in range(3):
    cmd = "( ( sleep 1000 & ) & ); ( ( sleep 0.01 & ) & ); sleep 0.2"
    res = LocalExecutor(grace_s=0.3).run(Request(["bash", "-c", cmd], cwd=Path({str(tmp_path)!r}),
                                                 env=dict(os.environ), mark=mark))
    assert res.ok, res
def parent(pid):
    try:  # any process on the machine may exit while we list them
        return open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()[2]
    except OSError:
        return None
children = [p for p in os.listdir("/proc") if p.isdigit() and parent(p) == str(os.getpid())]
print(len(children))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"  # neither live orphans nor zombies


def test_a_runner_finds_what_commands_left_among_its_orphans(tmp_path: Path) -> None:
    """In a child Python that is the subreaper, as a runner is, three commands run at once
    on worker threads, as attempts do, each leaving the hostile set behind: each sweep
    finds its own among the main thread's orphans, without a scan of all of /proc (the
    per-command cost this saves), and nothing carrying a marker is left."""
    run = f"test-adopt-{uuid.uuid4().hex[:8]}"
    script = f"""
import os, threading
from pathlib import Path
from conductor.exec import sweep
from conductor.exec.base import Request
from conductor.exec.local import LocalExecutor
assert sweep.become_subreaper()
def no_scan(prefix):
    raise AssertionError("scanned all of /proc")
sweep.marked = no_scan
failed = []
def one(i):
    mark = sweep.new_mark({run!r}, f"T{{i}}", "1")
    req = Request(["bash", "-c", {HOSTILE!r} + "true"], cwd=Path({str(tmp_path)!r}),
                  env=dict(os.environ), mark=mark)
    res = LocalExecutor(grace_s=0.3).run(req)
    if not res.ok:
        failed.append(res)
threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not failed, failed
"""
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert carrying(run) == []
    finally:
        for pid in carrying(run):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_tmux_executor_sweeps_too(tmp_path: Path, mark: str) -> None:
    from conductor.exec import panes
    from conductor.exec.tmux import TmuxExecutor

    socket = f"conductor-test-sweep-{os.getpid()}"  # never a real run's server
    ex = TmuxExecutor("", "shell", socket=socket, grace_s=0.3, settle_s=0.1, poll_s=0.05)
    try:
        res = ex.run(request(tmp_path, HOSTILE + "true", mark, limits=Limits(timeout_s=15)))
        assert res.ok, res
        assert carrying(mark) == []
    finally:
        panes.tmux(socket, "kill-server")
