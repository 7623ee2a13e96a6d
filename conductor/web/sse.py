"""Server-sent events of a run: its stored events replayed, then the new ones as written.

The store is the event log: a client that (re)connects with ``Last-Event-ID: N`` gets
every event after N, and one that connects late (N = 0) gets the whole run, so a page
opened in the middle of a run shows what happened before it. Each event goes out with
its store id as the SSE id. After each batch a ``tasks`` message carries every task's
state as `status` shows it, which is all the page needs to recolour the graph. When the
runner is gone and nothing is left to read, an ``end`` message says the run is over.

Polling the store, like `watch` does (``ops.follow``'s idle interval): SQLite in WAL mode
answers "anything after id N?" from an index in microseconds, and the reader never
blocks the runner.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import anyio.to_thread

from conductor.ops.follow import POLL_IDLE_S
from conductor.state.events import event_json
from conductor.state.liveness import is_live, shown_state, shown_task_state
from conductor.state.readonly import ReadOnlyStore
from conductor.state.records import EventRow
from conductor.state.store import Store

BATCH = 500  # events per read: a long run replays in a few reads, without a huge one
PING_S = 10.0  # an idle stream still writes now and then, so a gone client is noticed


def last_event_id(header: str | None, query: str | None) -> int:
    """Where to start: the ``Last-Event-ID`` header, else ``?after=``, else the start."""
    for raw in (header, query):
        if raw and raw.strip().isdigit():
            return int(raw.strip())
    return 0


def event_message(row: EventRow) -> str:
    # json.dumps escapes newlines, so one `data:` line always holds the whole event
    return f"id: {row['id']}\nevent: conductor\ndata: {json.dumps(event_json(row))}\n\n"


def snapshot(store: Store, run_id: str) -> tuple[dict[str, Any], bool]:
    """Every task's shown state and the run's; whether the run still has a runner."""
    run = store.run(run_id)
    if run is None:
        return {"state": "gone", "tasks": {}}, False
    shown = shown_state(store.path.parent, run)
    rows: Sequence[Mapping[str, Any]] = (
        store.select("SELECT task_id, state FROM tasks WHERE run_id = ? ORDER BY seq", (run_id,))
        if isinstance(store, ReadOnlyStore) else store.tasks(run_id))  # two columns, not all
    tasks = {t["task_id"]: shown_task_state(shown, t["state"]) for t in rows}
    return {"state": shown, "tasks": tasks}, shown in ("running", "cancelling")


def _batch(store: Store, run_id: str, after: int) -> list[EventRow]:
    return store.events(run_id, after=after, limit=BATCH)


def _live(store: Store, run_id: str) -> bool:
    run = store.run(run_id)
    return run is not None and is_live(store.path.parent, run)


def _message(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


async def stream(store: Store, run_id: str, after: int) -> AsyncIterator[str]:
    """The run's events after id ``after``, until the run is over (or the client goes)."""
    cursor = after
    yield "retry: 2000\n\n"
    last_write = time.monotonic()
    sent = False
    while True:
        rows = await anyio.to_thread.run_sync(_batch, store, run_id, cursor)
        if rows:
            cursor = rows[-1]["id"]
        if rows or not sent:  # one write per batch: the events, then where tasks stand
            snap, live = await anyio.to_thread.run_sync(snapshot, store, run_id)
            yield "".join(map(event_message, rows)) + _message("tasks", snap)
            sent, last_write = True, time.monotonic()
        else:
            live = await anyio.to_thread.run_sync(_live, store, run_id)
        if len(rows) == BATCH:
            continue
        if not rows and not live:
            yield _message("end", {})
            return
        if time.monotonic() - last_write > PING_S:
            yield ": ping\n\n"
            last_write = time.monotonic()
        # a page needs no more than two looks a second, busy or not
        await anyio.sleep(POLL_IDLE_S)
