"""Launching a recorded run somewhere other than this process: the detached runner.

Kept apart from driving a run (:mod:`conductor.run.start`), as a run launcher is kept
apart from the executor: `run --detach` and `resume --detach` record what to do, hand
the run to a background `conductor _drive RUN`, and return at once.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import NoReturn

from conductor.errors import UserError
from conductor.exec.detach import spawn_detached
from conductor.state.layout import Layout
from conductor.state.liveness import is_live
from conductor.state.records import RunRow
from conductor.state.store import Store


def runner_argv(run_id: str) -> list[str]:
    """The background runner of one run (a hidden command of the CLI)."""
    return [sys.executable, "-m", "conductor", "_drive", run_id]


def launch(root: Path, state_dir: Path, run_id: str) -> int:
    """Start the run's background runner; its output goes to the run's runner.log."""
    return spawn_detached(runner_argv(run_id), root, Layout(state_dir).runner_log(run_id))


def relaunch(store: Store, root: Path, run_id: str) -> None:
    """`resume --detach`: mark the run as starting again, then launch its runner."""
    store.update_run(run_id, state="running", pid=None, heartbeat=time.time())
    launch(root, store.path.parent, run_id)


def hand_over(store: Store, root: Path, run_id: str) -> NoReturn:
    """Start the runner as the very last thing and leave without interpreter teardown.

    The runner's start-up competes for the CPU with whatever this process still does, and
    tearing down ~300 modules costs ~25 ms nobody waits for: the run is recorded, the id
    printed, the store closed, so nothing is left to flush or finalise.
    """
    state_dir = store.path.parent
    store.close()
    sys.stdout.flush()
    sys.stderr.flush()
    launch(root, state_dir, run_id)
    os._exit(0)


def resumable(store: Store, run: RunRow) -> bool:
    """False when the run already succeeded (nothing to do); refuses a run still driven."""
    if run["state"] == "succeeded":
        return False
    if is_live(store.path.parent, run):
        raise UserError(f"run {run['id']} is still running",
                        hint=f"watch it with `conductor watch {run['id']}`")  # fmt: skip
    return True
