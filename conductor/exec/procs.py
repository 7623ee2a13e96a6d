"""The process table: is a process alive, when did it start, and stopping whole groups.

Every process conductor runs leads its own session and process group, so stopping it means
signalling the group (agents spawn shells, language servers, dev servers). Start times read
from /proc tell a recorded process from an unrelated one that reused its pid. What leaves
the group is found by the marker in its environment (:func:`sweep`), and orphans come to
the runner as child subreaper (:func:`become_subreaper`, :func:`reap_orphans`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from conductor.exec.base import MARK_VAR

_KILL_WAIT_S = 2.0  # a KILLed process is gone in microseconds unless stuck in the kernel
_PID_REUSE_TOLERANCE_S = 1.0  # start times derive from boot time, which may drift slightly


def _read_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks since boot) from /proc, if any."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return fields[0].decode(), int(fields[2]), int(fields[19])
    except (IndexError, ValueError):
        return None


@lru_cache(maxsize=1)
def _boot_time() -> float | None:
    try:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def _has_proc() -> bool:
    return os.path.isdir("/proc/self")


def process_start_time(pid: int) -> float | None:
    """When ``pid`` started, in seconds since the epoch; None where /proc is unavailable."""
    stat, boot = _read_stat(pid), _boot_time()
    if stat is None or boot is None:
        return None
    return boot + stat[2] / os.sysconf("SC_CLK_TCK")


def process_alive(pid: int, start_time: float | None = None) -> bool:
    """Is ``pid`` running (zombies are not)? With ``start_time`` (from :func:`process_start_time`
    or ``on_start``), a different process that reused the pid counts as not alive."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user: only the start time can tell it apart
    stat = _read_stat(pid)
    if stat is None:
        return not _has_proc()  # vanished meanwhile, or no /proc to ask
    if stat[0] in ("Z", "X"):
        return False
    if start_time is not None and (started := process_start_time(pid)) is not None:
        return abs(started - start_time) <= _PID_REUSE_TOLERANCE_S
    return True


def killpg(pgid: int, sig: int) -> bool:
    """Signal a group; False when it no longer exists (or is no longer ours)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Does the group still have a running member? Zombies don't count: orphans are reaped
    by init, which may take a while, and waiting for that would stall every kill."""
    if not killpg(pgid, 0):
        return False
    if not _has_proc():
        return True
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _read_stat(int(name))
            if stat is not None and stat[1] == pgid and stat[0] not in ("Z", "X"):
                return True
    return False


def stop_tree(pgid: int, grace_s: float, kill_now: threading.Event | None = None) -> None:
    """Stop a process tree: TERM its group, wait up to ``grace_s`` for it to go (cut short
    when ``kill_now`` is set meanwhile), KILL whatever is left, and wait until nothing of it
    runs, so that no leftover still writes into a worktree while conductor commits it.

    The one routine every part of conductor stops processes with: executors, the tmux
    panes, validators and hooks (through the executors) and recovery after a crash. On
    resume, check :func:`process_alive` with the recorded start time first: a pgid alone
    cannot tell a reused number from the agent that was started."""
    if pgid <= 1 or pgid == os.getpgrp():  # killpg of those would hit conductor itself
        raise ValueError(f"refusing to signal process group {pgid}")
    if grace_s > 0 and killpg(pgid, signal.SIGTERM):
        _await_gone(pgid, grace_s, kill_now)
    if killpg(pgid, signal.SIGKILL):
        _await_gone(pgid, _KILL_WAIT_S, None)


def _await_gone(pgid: int, timeout_s: float, kill_now: threading.Event | None) -> bool:
    """Wait up to ``timeout_s`` for the group to have no running member; True if it has none."""
    deadline = time.monotonic() + timeout_s
    delay = 0.002
    while group_alive(pgid):
        left = deadline - time.monotonic()
        if left <= 0 or (kill_now is not None and kill_now.is_set()):
            return False
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.05)
    return True


def pidfd(pid: int) -> int:
    """A descriptor that polls readable when ``pid`` exits (Linux >= 5.3), else -1."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return -1


# ---------------------------------------------------------------- the marker sweep
#
# A process group does not hold everything a command starts: a child that calls setsid,
# double-forks into a new session or daemonizes leaves it. What it cannot leave is the
# environment it inherited, so every command an attempt (or gate, or hook) runs carries
# MARK_VAR, and the sweep stops every live process whose environment still holds it.

_MARK_KEY = MARK_VAR.encode() + b"="
_PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>

_owned: set[int] = set()  # leaders a Popen object still waits for: never reaped here
_owned_lock = threading.Lock()
_subreaper = False  # orphans come here only once this process is the child subreaper


def new_mark(*parts: str) -> str:
    """A marker value: ``parts`` joined by `/` (run first, so a run's marks share a prefix),
    plus a random nonce so two attempts numbered alike in different runners never match."""
    return "/".join([*parts, os.urandom(4).hex()])


def _mark_of(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:  # gone, or another user's: not ours to stop anyway
        return None
    for entry in raw.split(b"\0"):
        if entry.startswith(_MARK_KEY):
            return entry[len(_MARK_KEY) :].decode(errors="replace")
    return None


def marked(prefix: str) -> list[int]:
    """Live processes (zombies ignored) whose marker equals or starts with ``prefix``."""
    if not prefix or not _has_proc():
        return []
    me, found = os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        mark = _mark_of(pid)
        if mark is not None and mark.startswith(prefix):
            stat = _read_stat(pid)
            if stat is not None and stat[0] not in ("Z", "X"):
                found.append(pid)
    return found


def _kill(pids: list[int], sig: int) -> None:
    for pid in pids:
        # by pid: a process that left its group is found only by its marker, and the
        # group it joined is not conductor's to signal
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def sweep(prefix: str, grace_s: float, kill_now: threading.Event | None = None) -> list[int]:
    """Stop every process carrying a marker that starts with ``prefix``: TERM, up to
    ``grace_s`` for them to go (cut short by ``kill_now``), KILL the rest (and whatever
    they forked meanwhile), wait until none runs. Returns the pids found. One /proc scan
    per round costs a few ms: callers run it once per command, never in a loop."""
    found = marked(prefix)
    if found and grace_s > 0 and not (kill_now is not None and kill_now.is_set()):
        _kill(found, signal.SIGTERM)
        _await(lambda: bool(marked(prefix)), grace_s, kill_now)
    left = marked(prefix) if found else []  # nothing marked: no second scan (the usual case)
    for _ in range(3):  # a process may fork between the scan and its KILL: scan again
        if not left:
            break
        _kill(left, signal.SIGKILL)
        _await(lambda: bool(marked(prefix)), _KILL_WAIT_S, None)
        left = marked(prefix)
    reap_orphans()
    return found


def cpu_times(pgid: int, mark: str | None) -> dict[tuple[int, int], float]:
    """CPU seconds used so far (user + system, with what each has reaped of its own
    children) by every live process of group ``pgid`` or carrying marker ``mark``, keyed
    by (pid, start tick) so that a reused pid counts as a new process. One /proc scan,
    like :func:`marked`; {} where there is no /proc."""
    if not _has_proc():
        return {}
    me, tick, found = os.getpid(), os.sysconf("SC_CLK_TCK"), {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                raw = fh.read()
            fields = raw[raw.rfind(b")") + 2 :].split()
            state, group, start = fields[0], int(fields[2]), int(fields[19])
            used = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        except (OSError, IndexError, ValueError):
            continue
        if state in (b"Z", b"X") or (group != pgid and (not mark or _mark_of(pid) != mark)):
            continue
        found[(pid, start)] = used / tick
    return found


def _await(busy: Callable[[], bool], timeout_s: float, kill_now: threading.Event | None) -> None:
    deadline, delay = time.monotonic() + timeout_s, 0.005
    while busy():
        left = deadline - time.monotonic()
        if left <= 0 or (kill_now is not None and kill_now.is_set()):
            return
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.1)


def become_subreaper() -> bool:
    """Make this process the child subreaper (Linux >= 3.4): what a command's children
    orphan (setsid, double fork) is reparented here instead of to init, so it stays in
    reach of the sweep and its exit status is collected here (see :func:`reap_orphans`).
    A no-op, False, where prctl is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    global _subreaper
    try:
        import ctypes  # only a run's driver needs it: not at import, for start-up

        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
    return _subreaper


class owning:
    """``with owning(): proc = Popen(...); own(proc.pid)``: the fork and the registration
    happen under the lock :func:`reap_orphans` holds, so a leader that exits at once is
    never reaped here behind its Popen object's back."""

    def __enter__(self) -> None:
        _owned_lock.acquire()

    def __exit__(self, *exc: object) -> None:
        _owned_lock.release()


def own(pid: int) -> None:
    """``pid`` is a leader a Popen object waits for (call inside :class:`owning`)."""
    _owned.add(pid)


def disown(pid: int) -> None:
    """The Popen object has reaped ``pid``."""
    with _owned_lock:
        _owned.discard(pid)


def reap_orphans() -> int:
    """Collect the exit status of orphans reparented to this subreaper; how many.

    ``os.waitpid(-1)`` is not safe here: it would also reap children that subprocess
    waits for (git, tmux clients, the executors' leaders), and Popen takes a lost child
    for exit status 0. So only zombies that are certainly orphans are reaped: our
    children in another session than ours (git and tmux clients run in ours; every
    command of the executors leads its own) that no Popen object owns (``_owned``)."""
    if not _subreaper or not _has_proc():  # else no orphan is ever ours to reap
        return 0
    me, my_sid, reaped = os.getpid(), os.getsid(0), 0
    with _owned_lock:
        for pid in _children_of_self():
            if pid in _owned:
                continue
            if _zombie_orphan(pid, me, my_sid):
                with contextlib.suppress(ChildProcessError):
                    reaped += os.waitpid(pid, os.WNOHANG)[0] == pid
    return reaped


def _children_of_self() -> list[int]:
    """Our children, from each thread's ``children`` list (a few small reads, where a
    scan of all of /proc per command would cost milliseconds); the full scan where the
    kernel does not offer the lists."""
    tasks = Path("/proc/self/task")
    try:
        files = [tasks / t.name / "children" for t in tasks.iterdir()]
        if files and files[0].exists():
            pids: set[int] = set()
            for f in files:
                with contextlib.suppress(OSError):
                    pids.update(int(x) for x in f.read_text().split())
            return sorted(pids)
    except OSError:
        pass
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def _zombie_orphan(pid: int, me: int, my_sid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return False
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        state, ppid, sid = fields[0], int(fields[1]), int(fields[3])
    except (IndexError, ValueError):
        return False
    return state == b"Z" and ppid == me and sid != my_sid
