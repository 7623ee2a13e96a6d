"""What a command leaves running: the marker sweep, the subreaper and its orphans.

A process group does not hold everything a command starts: a child that calls setsid,
double-forks into a new session or daemonizes leaves it. What it cannot leave is the
environment it inherited, so every command an attempt (or gate, or hook) runs carries
MARK_VAR, and the sweep stops every live process whose environment still holds it.

Where to look. A runner is the child subreaper (:func:`become_subreaper`), so when a
command's leader has exited, everything it left running was reparented to the runner —
and Linux hands orphans to the first live thread of the subreaper, its main thread
(``find_new_reaper``/``find_alive_thread`` in kernel/exit.c). So after a local command
the sweep walks only the main thread's children and what descends from them
(:func:`sweep` with ``adopted=True``): a few reads, where reading every process's
environment on the machine cost ~7 system calls a process (hundreds on a desktop) per
command, each one a GIL hand-off between the runner's threads. Without a subreaper or
the kernel's children lists, and for processes that are not our descendants (tmux panes,
a crashed runner's agents on resume, a Ray worker), it scans all of /proc.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from conductor.exec.procs import _has_proc, _read_stat, mark_of
from conductor.git.smallfiles import read_bytes

_KILL_WAIT_S = 2.0  # a KILLed process is gone in microseconds unless stuck in the kernel
_PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>

_owned: set[int] = set()  # leaders a Popen object still waits for: never reaped here
_owned_lock = threading.Lock()
_subreaper = False  # orphans come here only once this process is the child subreaper


def new_mark(*parts: str) -> str:
    """A marker value: ``parts`` joined by `/` (run first, so a run's marks share a prefix),
    plus a random nonce so two attempts numbered alike in different runners never match."""
    return "/".join([*parts, os.urandom(4).hex()])


def _running(pid: int) -> bool:
    stat = _read_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def marked(prefix: str) -> list[int]:
    """Live processes (zombies ignored) whose marker equals or starts with ``prefix``,
    anywhere on the machine."""
    if not prefix or not _has_proc():
        return []
    me, found = os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        mark = mark_of(pid)
        if mark is not None and mark.startswith(prefix) and _running(pid):
            found.append(pid)
    return found


def _children(pid: int, tid: int) -> list[int] | None:
    """The children of one thread, from the kernel's list; None where there is none."""
    raw = read_bytes(f"/proc/{pid}/task/{tid}/children")
    return None if raw is None else [int(p) for p in raw.split()]


def _all_children(pid: int) -> list[int]:
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:  # gone meanwhile
        return []
    return [c for t in tids if t.isdigit() for c in _children(pid, int(t)) or ()]


def _adopted() -> list[int] | None:
    """The orphans this runner holds (module docstring); None when it cannot tell."""
    if not _subreaper:
        return None
    me = os.getpid()
    return _children(me, me)


def adopted_marked(prefix: str) -> list[int] | None:
    """Live marked processes among this runner's orphans and everything below them; None
    where that does not cover what a finished command left (see the module docstring).
    Other commands' leaders, whose Popen objects wait for them, are not looked into."""
    first = _adopted() if prefix else None
    if first is None:
        return None
    with _owned_lock:
        todo = [p for p in first if p not in _owned]
    found: list[int] = []
    seen: set[int] = set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        mark = mark_of(pid)
        if mark is not None and mark.startswith(prefix) and _running(pid):
            found.append(pid)
        todo.extend(_all_children(pid))
    return found


def sweep(
    prefix: str, grace_s: float, kill_now: threading.Event | None = None, adopted: bool = False
) -> list[int]:
    """Stop every process carrying a marker that starts with ``prefix``: TERM, up to
    ``grace_s`` for them to go (cut short by ``kill_now``), KILL the rest (and whatever
    they forked meanwhile), wait until none runs. Returns the pids found.

    ``adopted``: the command ran as this process's child and its leader is reaped, so
    whatever it left is among the orphans this runner adopted (module docstring); else,
    or when this process is no subreaper, one /proc scan per round (a few ms)."""
    first = adopted_marked(prefix) if adopted else None  # None: look everywhere instead
    find: Callable[[], list[int]] = (
        (lambda: adopted_marked(prefix) or []) if first is not None else (lambda: marked(prefix))
    )
    found = first if first is not None else find()
    if found and grace_s > 0 and not (kill_now is not None and kill_now.is_set()):
        _kill(found, signal.SIGTERM)
        _await(lambda: bool(find()), grace_s, kill_now)
    left = find() if found else []  # nothing marked: no second look (the usual case)
    for _ in range(3):  # a process may fork between the look and its KILL: look again
        if not left:
            break
        _kill(left, signal.SIGKILL)
        _await(lambda: bool(find()), _KILL_WAIT_S, None)
        left = find()
    reap_orphans()
    return found


def _kill(pids: list[int], sig: int) -> None:
    for pid in pids:
        # by pid: a process that left its group is found only by its marker, and the
        # group it joined is not conductor's to signal
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


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
        # orphans come to the main thread (module docstring); every pid where the
        # kernel keeps no children lists
        adopted = _adopted()
        for pid in adopted if adopted is not None else _every_pid():
            if pid in _owned:
                continue
            if _zombie_orphan(pid, me, my_sid):
                with contextlib.suppress(ChildProcessError):
                    reaped += os.waitpid(pid, os.WNOHANG)[0] == pid
    return reaped


def _zombie_orphan(pid: int, me: int, my_sid: int) -> bool:
    raw = read_bytes(f"/proc/{pid}/stat")
    if raw is None:
        return False
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        state, ppid, sid = fields[0], int(fields[1]), int(fields[3])
    except (IndexError, ValueError):
        return False
    return state == b"Z" and ppid == me and sid != my_sid


def _every_pid() -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]
