"""Keeps the execution log current while a run goes, off the engine's path.

A sink that only sets a flag on task ends; a background thread rewrites the log
(atomically, see report.write_log), coalescing bursts of completions into one write.
"""

from __future__ import annotations

import contextlib
import threading

from conductor.git.workspace import Workspace
from conductor.report import log as report
from conductor.spec.model import Workflow
from conductor.state.records import EventRow
from conductor.state.store import Store

MIN_INTERVAL_S = 2.0
TRIGGERS = frozenset({"task_completed", "task_failed", "task_blocked", "task_cancelled",
                      "gate_passed", "gate_failed", "task_awaiting_approval"})  # fmt: skip


class LogWriter:
    def __init__(self, store: Store, run_id: str, wf: Workflow, ws: Workspace) -> None:
        self.store, self.run_id, self.wf, self.ws = store, run_id, wf, ws
        self._due = threading.Event()
        self._stop = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="execution-log", daemon=True)
        self._thread.start()

    def __call__(self, row: EventRow) -> None:
        if row["kind"] in TRIGGERS:
            self._due.set()

    def _loop(self) -> None:
        while True:
            self._due.wait()
            if self._closing:
                return
            self._due.clear()
            # at most one render per interval: a burst of 200 quick tasks is one write,
            # not 200 renders competing with the engine for the GIL
            self._stop.wait(MIN_INTERVAL_S)
            if self._closing:
                return
            # a full disk must not stop the run; the final write at the end reports it
            with contextlib.suppress(OSError):
                report.write_log(self.store, self.run_id, self.wf, self.ws)

    def close(self) -> None:
        self._closing = True
        self._stop.set()
        self._due.set()
        self._thread.join()
