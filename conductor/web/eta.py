"""When a live run should be done: the live view's own estimate, fed from the store.

``RunModel`` is what the terminal's live view reads its ETA from; here one model per live
run is kept and handed only the events written since the last look, so a page refreshed
every few seconds costs a handful of rows, and the page and the terminal agree.
"""

from __future__ import annotations

import threading
import time

from conductor.console.runmodel import RunModel
from conductor.state.records import RunRow
from conductor.state.store import Store
from conductor.web.shape import Shape

KEEP = 16  # live runs followed at once; more are rare, and a miss only replays events


class Etas:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, tuple[RunModel, int]] = {}

    def seconds_left(self, store: Store, run: RunRow, shape: Shape) -> float | None:
        """None when the workflow could not be read or nothing has finished to go by."""
        if shape.workflow is None:
            return None
        with self._lock:
            model, cursor = self._models.get(run["id"]) or (self._model(shape), 0)
            for row in store.events(run["id"], after=cursor):
                model.apply(row)
                cursor = row["id"]
            if len(self._models) >= KEEP and run["id"] not in self._models:
                self._models.clear()
            self._models[run["id"]] = (model, cursor)
            return model.eta(time.time())

    @staticmethod
    def _model(shape: Shape) -> RunModel:
        assert shape.workflow is not None
        waves = {t: i for i, wave in enumerate(shape.waves) for t in wave}
        return RunModel(shape.workflow, list(waves), waves)
