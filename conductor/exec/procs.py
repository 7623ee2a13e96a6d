"""The process table: is a process alive, when did it start, and stopping whole groups.

Every process conductor runs leads its own session and process group, so stopping it means
signalling the group (agents spawn shells, language servers, dev servers). Start times read
from /proc tell a recorded process from an unrelated one that reused its pid. What leaves
the group is found by the marker in its environment, and orphans come to the runner as
child subreaper: both in conductor.exec.sweep.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from functools import lru_cache

from conductor.exec.base import MARK_VAR
from conductor.git.smallfiles import read_bytes

_KILL_WAIT_S = 2.0  # a KILLed process is gone in microseconds unless stuck in the kernel
_PID_REUSE_TOLERANCE_S = 1.0  # start times derive from boot time, which may drift slightly


# /proc is read with raw system calls (smallfiles.read_bytes): a sweep reads many files,
# and each call of open()'s fstat, ioctl and lseek hands the GIL to another thread.
_MARK_KEY = MARK_VAR.encode() + b"="


def mark_of(pid: int) -> str | None:
    """The marker in ``pid``'s environment (see conductor.exec.sweep), if any."""
    raw = read_bytes(f"/proc/{pid}/environ")
    for entry in raw.split(b"\0") if raw else ():
        if entry.startswith(_MARK_KEY):
            return entry[len(_MARK_KEY) :].decode(errors="replace")
    return None


def _read_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks since boot) from /proc, if any."""
    raw = read_bytes(f"/proc/{pid}/stat")
    if raw is None:
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


def cpu_times(pgid: int, mark: str | None) -> dict[tuple[int, int], float]:
    """CPU seconds used so far (user + system, with what each has reaped of its own
    children) by every live process of group ``pgid`` or carrying marker ``mark``, keyed
    by (pid, start tick) so that a reused pid counts as a new process. One /proc scan,
    like the sweep's; {} where there is no /proc."""
    if not _has_proc():
        return {}
    me, tick, found = os.getpid(), os.sysconf("SC_CLK_TCK"), {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        raw = read_bytes(f"/proc/{pid}/stat")
        if raw is None:
            continue
        try:
            fields = raw[raw.rfind(b")") + 2 :].split()
            state, group, start = fields[0], int(fields[2]), int(fields[19])
            used = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        except (IndexError, ValueError):
            continue
        if state in (b"Z", b"X") or (group != pgid and (not mark or mark_of(pid) != mark)):
            continue
        found[(pid, start)] = used / tick
    return found
