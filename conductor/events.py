"""The event bus: every transition becomes a store row, then reaches the sinks.

The engine never prints; the console, hooks and the live view subscribe here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from conductor.store import Row, Store

Sink = Callable[[Row], None]

LEVELS = {
    "task_failed": "error",
    "run_failed": "error",
    "validation_failed": "warning",
    "conflict": "warning",
    "task_warning": "warning",
    "system_alert": "warning",
    "gate_failed": "error",
    "task_blocked": "warning",
    "task_retrying": "warning",
}


class Emitter:
    def __init__(self, store: Store, run_id: str, redact: Callable[[str], str] = str) -> None:
        self.store = store
        self.run_id = run_id
        self.redact = redact
        self.sinks: list[Sink] = []
        self._lock = threading.Lock()  # keeps sink output in event-id order

    def __call__(
        self, kind: str, task: str | None = None, level: str | None = None, **data: Any
    ) -> Row:
        clean = {k: self.redact(v) if isinstance(v, str) else v for k, v in data.items()}
        with self._lock:
            row = self.store.emit(
                self.run_id, kind, task, level or LEVELS.get(kind, "info"), **clean
            )
            for sink in self.sinks:
                sink(row)
        return row
