"""Is a run's runner alive? One flock per run, held for the runner's whole life.

The kernel drops a flock when its holder dies, even by SIGKILL, so the lock is the
truth about liveness; the heartbeat only covers the moment between `run --detach`
recording a run and its background runner taking the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from conductor.errors import UserError
from conductor.state.layout import Layout
from conductor.state.records import RunRow
from conductor.state.states import RUN_LIVE, TASK_ACTIVE
from conductor.state.storefaults import translate

if TYPE_CHECKING:
    from conductor.state.store import Store

START_GRACE_S = 15.0  # a detached runner has this long to take its lock


def lock_path(state_dir: Path, run_id: str) -> Path:
    return Layout(state_dir).runner_lock(run_id)


def lock_held(state_dir: Path, run_id: str) -> bool:
    path = lock_path(state_dir, run_id)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def is_live(state_dir: Path, run: RunRow) -> bool:
    """The run has a runner now (or one is just starting)."""
    if run["state"] not in RUN_LIVE:
        return False
    if lock_held(state_dir, run["id"]):
        return True
    # Starting: the row is in, the lock not yet taken. A runner that recorded its pid and
    # is gone (killed during its start-up checks) is not starting any more.
    starting = time.time() - (run["heartbeat"] or 0) < START_GRACE_S
    return starting and (run["pid"] is None or Path(f"/proc/{run['pid']}").is_dir())


def claim(store: Store, name: str, record: Callable[[], None]) -> None:
    """Record a new run of workflow ``name`` with ``record()`` unless one is live: one step.

    The check and the insert share one ``BEGIN IMMEDIATE`` transaction, and SQLite lets
    one writer in at a time, so of two `conductor run` started together the second reads
    the first one's row and is refused. That row is inserted in its starting form (pid
    NULL, fresh heartbeat), which ``is_live`` counts as live until a runner takes its
    lock. Chosen over a per-workflow flock around check and insert: the store is already
    where every process looks (status, cancel, resume), a lock file would be a second
    truth to keep in step with it, and a lock held only for check+insert would still need
    the row to say "live" for the whole hand-over to the runner.
    """
    with store.tx():
        for other in store.active_runs(name):
            if is_live(store.path.parent, other):
                raise UserError(
                    f"run {other['id']} of workflow `{name}` is still running",
                    hint=f"wait for it, or `conductor cancel {other['id']}`",
                )
            store.update_run(other["id"], state="interrupted")  # its runner is gone
        record()


STALE_S = 30.0  # a heartbeat younger than this may still mean a runner is about


def may_be_live(state_dir: Path, run: RunRow) -> bool:
    """The cautious reading, for commands that delete or move what a run owns: a recent
    heartbeat counts too, since a false "live" costs a retry and a false "dead" work."""
    if is_live(state_dir, run):
        return True
    fresh = time.time() - (run["heartbeat"] or 0) < STALE_S
    return run["state"] in RUN_LIVE and fresh


def shown_state(state_dir: Path, run: RunRow) -> str:
    """What `status` says: a running run without a runner is interrupted."""
    if run["state"] in RUN_LIVE and not is_live(state_dir, run):
        return "interrupted"
    return str(run["state"])


def shown_task_state(run_shown: str, task_state: str) -> str:
    """A task cannot be at work in a run whose runner is gone (killed, or stopped by a
    store fault before it could say so): `status` shows it `interrupted`, as `resume`
    will treat it, instead of a `running` that nothing is doing."""
    if run_shown == "interrupted" and task_state in TASK_ACTIVE:
        return "interrupted"
    return task_state


class RunLock:
    """Held by the process driving a run; refuses a second driver."""

    def __init__(self, state_dir: Path, run_id: str) -> None:
        self.path = lock_path(state_dir, run_id)
        self.run_id = run_id
        self._fh: IO[str] | None = None

    def acquire(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = self.path.open("a+")
        except OSError as exc:  # a read-only or full `.conductor`: one message, no traceback
            raise translate(Path(exc.filename or self.path), exc) from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise UserError(
                f"run {self.run_id} is already being driven by {holder}",
                hint=f"watch it with `conductor watch {self.run_id}`",
            ) from None
        # who holds it, for the refusal above; the flock alone is the truth, so a full
        # disk that takes no text does not stop the run (the store will say it is full)
        with contextlib.suppress(OSError):
            fh.truncate(0)
            os.write(fh.fileno(), f"pid {os.getpid()}".encode())
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the flock
            self._fh = None
