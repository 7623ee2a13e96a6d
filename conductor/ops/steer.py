"""Steering a run from another terminal: cancel it (or one task), report progress.

The runner owns a live run: these functions only record a request in the store (a
`cancelling` state the runner's heartbeat picks up) and, for a run whose runner is gone,
record the outcome themselves. Every event they write goes through the emitter.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from conductor.errors import InfraError, UserError
from conductor.state.events import Emitter
from conductor.state.layout import Layout
from conductor.state.liveness import is_live
from conductor.state.records import RunRow
from conductor.state.spool import SPOOL_VAR, write_report
from conductor.state.states import RUN_ENDED, TASK_TERMINAL
from conductor.state.store import Store

CANCEL_WAIT_S = 120.0


def cancel(store: Store, run: RunRow, task: str | None = None, wait: bool = True) -> str:
    """Cancel the run (or one task of it); return the run's state afterwards.

    A live run is asked to stop and, with ``wait``, waited for; a run without a runner is
    marked cancelled here (`resume` still picks it up)."""
    if run["state"] in RUN_ENDED:
        raise UserError(f"run {run['id']} already ended ({run['state']})")
    live = is_live(store.path.parent, run)
    if task is not None:
        _cancel_task(store, run, task, live)
    elif live:
        store.update_run(run["id"], state="cancelling")
        if wait:
            wait_until_stopped(store, run["id"])
    else:
        _cancel_dead_run(store, run)
    final = store.run(run["id"])
    assert final is not None
    return str(final["state"])


def _cancel_task(store: Store, run: RunRow, task: str, live: bool) -> None:
    t = store.task(run["id"], task)
    if t is None:
        raise UserError(f"run {run['id']} has no task `{task}`")
    if t["state"] in TASK_TERMINAL:
        raise UserError(f"task {task} already ended ({t['state']})")
    store.update_task(run["id"], task, state="cancelling" if live else "cancelled")


def _cancel_dead_run(store: Store, run: RunRow) -> None:
    """No runner: record the cancellation directly."""
    for t in store.tasks(run["id"]):
        if t["state"] not in TASK_TERMINAL:
            store.update_task(run["id"], t["task_id"], state="cancelled")
    store.update_run(run["id"], state="cancelled", finished=time.time())
    Emitter(store, run["id"])("run_finished", None, state="cancelled")


def wait_until_stopped(store: Store, run_id: str, timeout_s: float = CANCEL_WAIT_S) -> None:
    """Wait until the run has no runner any more (or ``timeout_s`` passed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = store.run(run_id)
        if row is None or not is_live(store.path.parent, row):
            return
        time.sleep(0.2)


PROGRESS_VARS = ("CONDUCTOR_STATE_DIR", "CONDUCTOR_RUN_ID", "CONDUCTOR_TASK_ID")


def report_progress(environ: Mapping[str, str], percent: float, message: str | None) -> None:
    """`conductor progress` from inside a task: the environment says which run and task.

    Inside an attempt the report goes to its spool (``CONDUCTOR_PROGRESS_DIR``, in its
    worktree), which the runner takes, masks and records: no write access to the state
    directory (read-only in Codex's sandbox) and no wait on the store's lock. Elsewhere
    (a validator, a hand-made environment) it writes the store. Every failure is one
    message and a non-zero exit, never a traceback."""
    if not 0 <= percent <= 100:
        raise UserError(f"progress must be between 0 and 100, not {percent:g}")
    spool = environ.get(SPOOL_VAR)
    needed = PROGRESS_VARS[1:] if spool else PROGRESS_VARS
    missing = [k for k in needed if not environ.get(k)]
    if missing:
        raise UserError("not inside a conductor task (" + ", ".join(missing) + " not set)",
                        hint="conductor sets these for every task it runs")  # fmt: skip
    run_id, task_id = environ["CONDUCTOR_RUN_ID"], environ["CONDUCTOR_TASK_ID"]
    if spool:
        try:
            write_report(Path(spool), percent, message)
            return
        except OSError as exc:
            if not environ.get("CONDUCTOR_STATE_DIR"):
                raise InfraError(f"cannot leave the progress report in {spool}: "
                                 f"{exc.strerror or exc}") from None  # fmt: skip
    _store_progress(Path(environ["CONDUCTOR_STATE_DIR"]), run_id, task_id, percent, message)


def _store_progress(state_dir: Path, run_id: str, task_id: str, percent: float,
                    message: str | None) -> None:  # fmt: skip
    db = Layout(state_dir).db
    if not db.is_file():  # never create a store where CONDUCTOR_STATE_DIR points
        hint = "run `conductor progress` from inside a task conductor runs"
        raise UserError(f"no conductor state in {state_dir} (CONDUCTOR_STATE_DIR)", hint=hint)
    try:
        with Store(db) as store:
            if store.task(run_id, task_id) is None:
                raise UserError(f"run {run_id} has no task `{task_id}`")
            store.update_task(run_id, task_id, progress=percent, step=message)
            Emitter(store, run_id)("task_progress", task_id, percent=percent, message=message)
    except OSError as exc:  # the store translates SQLite's errors; anything else of the OS
        raise InfraError(f"cannot record progress in {db}: {exc.strerror or exc}") from None
