"""The event bus: every transition becomes a store row, then reaches the sinks.

The engine never prints; the console, hooks and the live view subscribe here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conductor.state.records import EventRow
from conductor.state.states import LEVELS, EventKind, Level
from conductor.state.store import Store

Sink = Callable[[EventRow], None]


def event_json(row: EventRow) -> dict[str, Any]:
    """An event as `run --json`, `watch --json` and hooks show it (a documented shape)."""
    return {
        "id": row["id"],
        "ts": row["ts"],
        "run": row["run_id"],
        "kind": row["kind"],
        "level": row["level"],
        "task": row["task_id"],
        "data": row["data"],
    }


class Emitter:
    def __init__(self, store: Store, run_id: str, redact: Callable[[str], str] = str) -> None:
        self.store = store
        self.run_id = run_id
        self.redact = redact
        self.sinks: list[Sink] = []
        self._lock = threading.Lock()  # keeps sink output in event-id order
        self._own: set[int] = set()
        last = store.events(run_id, limit=1, newest=True)
        self._cursor: int = last[0]["id"] if last else 0  # a resumed run: only new events
        self._before = self._cursor  # what `replay` hands over

    def __call__(
        self, kind: EventKind, task: str | None = None, level: Level | None = None, **data: Any
    ) -> EventRow:
        clean = {k: self.redact(v) if isinstance(v, str) else v for k, v in data.items()}
        with self._lock:
            row = self.store.emit(
                self.run_id, kind, task, level or LEVELS.get(kind, "info"), **clean
            )
            if row["id"] == self._cursor + 1:  # nothing foreign came in between: the
                self._cursor = row["id"]  # next `forward_foreign` need not read it again
            else:
                self._own.add(row["id"])
            for sink in self.sinks:
                sink(row)
        return row

    def replay(self) -> None:
        """Hand the run's events so far to the sinks: what `run` recorded before its
        runner started (a fresh run's results_replaced) is shown like the rest."""
        with self._lock:
            for row in self.store.events(self.run_id, after=0):
                if row["id"] > self._before:
                    break
                for sink in self.sinks:
                    sink(row)

    def forward_foreign(self) -> None:
        """Pass events other processes wrote for this run (`conductor progress`) to the sinks.

        `conductor progress` runs inside the task and does not know the workflow's secrets
        (handing them to it would put them in one more place), so it stores the message
        raw. Here the runner masks each such row and rewrites its stored copy (the event's
        data and the task's `step`) before any sink sees it. The window: a secret in a
        progress message is on disk from its write until the runner's next loop tick
        (about a second; `status` in that second may show it), and never reaches a log,
        export or terminal fed by the sinks."""
        with self._lock:
            rows = self.store.events(self.run_id, after=self._cursor)
            if rows:
                self._cursor = rows[-1]["id"]
            for row in rows:
                if row["id"] in self._own:
                    self._own.discard(row["id"])
                    continue
                row = self._remask(row)
                for sink in self.sinks:
                    sink(row)

    def _remask(self, row: EventRow) -> EventRow:
        data = row["data"] or {}
        clean = {k: self.redact(v) if isinstance(v, str) else v for k, v in data.items()}
        if clean == data:
            return row
        with self.store.tx() as db:
            # zero the old cell's bytes, not only unlink them: state.db is on disk too
            db.execute("PRAGMA secure_delete = ON")
            stored = json.dumps(clean, default=str)
            db.execute("UPDATE events SET data = ? WHERE id = ?", (stored, row["id"]))
            if row["task_id"] is not None and isinstance(data.get("message"), str):
                db.execute(
                    "UPDATE tasks SET step = ? WHERE run_id = ? AND task_id = ? AND step = ?",
                    (clean["message"], self.run_id, row["task_id"], data["message"]),
                )
        _truncate_wal(self.store.path)
        return {**row, "data": clean}


def _truncate_wal(db_path: Path) -> None:
    """The raw row may still be a frame of the WAL file: copy the masked pages into the
    database and empty the WAL. Rare (only a progress message that held a secret); its own
    short connection, so no thread's transaction on the store's one is in the way; best
    effort: a busy database leaves the frame until SQLite's next checkpoint."""
    try:
        con = sqlite3.connect(db_path, timeout=2)
        try:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            con.close()
    except sqlite3.Error:
        pass
