"""Following a run from the store: its events as they are written, an attempt's log.

What `watch` and `logs -f` do, as functions: the store and the log files are the truth,
so a follower works the same for a run driven here, in the background, or already over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from conductor.errors import UserError
from conductor.state.liveness import is_live, shown_state
from conductor.state.records import AttemptRow, EventRow
from conductor.state.store import Store

Sink = Callable[[EventRow], None]
POLL_BUSY_S = 0.3  # events just arrived: more are likely
POLL_IDLE_S = 0.5
LOG_POLL_S = 0.3


def follow(store: Store, run_id: str, sink: Sink) -> str:
    """Hand every event of the run to ``sink`` until its runner is gone and nothing is
    left to read; return the state `status` would show then (e.g. ``interrupted``)."""
    cursor = 0
    while True:
        rows = store.events(run_id, after=cursor)
        for e in rows:
            sink(e)
            cursor = e["id"]
        current = store.run(run_id)
        assert current is not None
        if not rows and not is_live(store.path.parent, current):
            return shown_state(store.path.parent, current)
        time.sleep(POLL_BUSY_S if rows else POLL_IDLE_S)


def pick_attempt(store: Store, run_id: str, task: str, attempt: int | None) -> AttemptRow:
    """The attempt of ``task`` numbered ``attempt`` (the latest when None)."""
    atts = store.attempts(run_id, task)
    if not atts:
        raise UserError(f"task `{task}` has no attempts in run {run_id}")
    pick = atts[-1] if attempt is None else next((a for a in atts if a["n"] == attempt), None)
    if pick is None:
        raise UserError(
            f"task `{task}` has no attempt {attempt}",
            hint=f"attempts: {', '.join(str(a['n']) for a in atts)}",
        )
    return pick


def log_of(attempt: AttemptRow) -> Path:
    """Where the attempt's output is (a row written by hand may lack it)."""
    if not attempt["log_path"]:
        raise UserError(f"attempt {attempt['n']} of {attempt['task_id']} has no log")
    return Path(attempt["log_path"])


def attempt_finished(store: Store, run_id: str, task: str, n: int) -> bool:
    att = [a for a in store.attempts(run_id, task) if a["n"] == n]
    return bool(att and att[0]["finished"])


def copy_log(
    path: Path,
    write: Callable[[str], None],
    follow: bool,
    done: Callable[[], bool],
    *,
    escape: bool = False,
) -> None:
    """Write the log's content; with ``follow``, keep writing what is appended until
    ``done()`` says the attempt has finished. ``escape`` (a terminal): the agent's
    control characters and escape sequences are shown escaped instead of acted on."""
    from conductor.console.safe import safe

    pos = 0
    while True:
        if path.exists():
            with path.open("rb") as fh:
                fh.seek(pos)
                chunk = fh.read()
            pos += len(chunk)
            if chunk:
                text = chunk.decode(errors="replace")
                write(safe(text) if escape else text)
        if not follow or done():
            return
        time.sleep(LOG_POLL_S)
