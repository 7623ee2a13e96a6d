"""A `conductor progress` message holding a secret is re-masked by the runner: the stored
event, the task's step and the bytes of state.db and its WAL no longer hold it, while the
run's store is still open (not only after SQLite cleans up on close)."""

from __future__ import annotations

from pathlib import Path

from conductor.spec.secrets import Secrets
from conductor.state.events import Emitter
from conductor.state.records import EventRow
from conductor.state.store import open_store

SECRET = "progress-secret-0a1b2c3d"


def test_forwarded_progress_is_masked_in_the_store_and_on_disk(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.create_run("r1", "wf.yaml", "wf", "conductor/wf", {}, [("T", None, "sh", "running", "h")])
    runner = Emitter(store, "r1", Secrets({"S": SECRET}).redact)
    seen: list[EventRow] = []
    runner.sinks.append(seen.append)
    # what `conductor progress` does from inside the task, in its own process
    task_side = open_store(tmp_path)
    message = f"deploying with {SECRET}"
    task_side.update_task("r1", "T", progress=50, step=message)
    Emitter(task_side, "r1")("task_progress", "T", percent=50, message=message)
    task_side.close()
    runner.forward_foreign()
    assert [r["data"]["message"] for r in seen] == ["deploying with ***"]
    assert store.events("r1")[-1]["data"]["message"] == "deploying with ***"
    task = store.task("r1", "T")
    assert task is not None and task["step"] == "deploying with ***"
    on_disk = [f for f in tmp_path.iterdir() if f.name.startswith("state.db")]
    assert on_disk and all(SECRET.encode() not in f.read_bytes() for f in on_disk)
    store.close()
