"""The mailbox between a runner and its remote attempts: one Ray actor per run.

Why an actor, and one per run: a remote attempt must stream its log lines and progress to
the runner while it runs, and must hear the runner's stop signal (cancel, Ctrl-C) and its
answer to "which commits do you need?". Both ends only ever *call* the hub (the runner
cannot call into a Ray task), so a few cheap method calls a second carry everything, and
one actor per run (not per attempt: each actor is a process) keeps a 100-task run light.
It is placed on the runner's node (no CPU) and dies with the runner, which is how a worker
learns that its runner is gone.

Messages are tuples ``(kind, *data)``; the kinds are the job's business (see
``conductor.run.remote_work``), the hub only queues them per attempt key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

FLUSH_S = 0.2  # how often a worker exchanges with the hub: latency of lines and of a stop
LOST_AFTER_S = 20.0  # a hub unreachable this long: the runner is gone, stop the command
_CALL_TIMEOUT_S = 10.0

Message = tuple[Any, ...]
END = "end"  # the last message of every attempt: its result is on the way
STOP_NONE, STOP_CANCEL, STOP_KILL = 0, 1, 2


@dataclass
class _Box:
    items: list[Message] = field(default_factory=list)
    asks: list[Any] = field(default_factory=list)
    reply: list[Any] | None = None
    stop: int = STOP_NONE
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    """The actor (an async one: a worker's ``ask`` waits for the runner's answer without
    holding up the other attempts' calls)."""

    def __init__(self) -> None:
        self.boxes: dict[str, _Box] = {}

    def _box(self, key: str) -> _Box:
        return self.boxes.setdefault(key, _Box())

    async def post(self, key: str, items: list[Message]) -> int:
        """Worker: deliver messages; returns the stop level the runner asked for."""
        box = self._box(key)
        if items:
            box.items.extend(items)
            box.wake.set()
        return box.stop

    async def ask(self, key: str, question: Any) -> list[Any]:
        """Worker: ask the runner something and wait for its answer."""
        box = self._box(key)
        box.asks.append(question)
        box.wake.set()
        await box.answered.wait()
        box.answered.clear()
        reply, box.reply = box.reply or [], None
        return reply

    async def drain(self, key: str, wait_s: float) -> tuple[list[Message], list[Any]]:
        """Runner: what arrived (waiting up to ``wait_s`` for something to)."""
        box = self._box(key)
        if not box.items and not box.asks:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(box.wake.wait(), wait_s)
        box.wake.clear()
        items, asks = box.items, box.asks
        box.items, box.asks = [], []
        return items, asks

    async def answer(self, key: str, reply: list[Any]) -> None:
        """Runner: the answer to the worker's pending ``ask`` (a list: an ObjectRef inside
        one reaches the worker as a ref, not resolved by the actor)."""
        box = self._box(key)
        box.reply = reply
        box.answered.set()

    async def stop(self, key: str, level: int) -> None:
        box = self._box(key)
        box.stop = max(box.stop, level)

    async def forget(self, key: str) -> None:
        self.boxes.pop(key, None)


_hubs: dict[str, Any] = {}
_hubs_lock = threading.Lock()


def hub_for(ray: Any, run_id: str) -> Any:
    """This runner's hub for the run, created on its node on first use. Named after the
    runner's pid too: a resumed run's runner never finds its dead predecessor's hub."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    with _hubs_lock:
        if run_id not in _hubs:
            node = ray.get_runtime_context().get_node_id()
            here = NodeAffinitySchedulingStrategy(node, soft=False)
            actor = ray.remote(Hub).options(
                name=f"hub/{run_id}/{os.getpid()}", get_if_exists=True, num_cpus=0,
                max_restarts=0, scheduling_strategy=here,
            )  # fmt: skip
            _hubs[run_id] = actor.remote()
        return _hubs[run_id]


def drop(run_id: str) -> None:
    """Forget this runner's hub for the run (it died): the next attempt makes a new one."""
    with _hubs_lock:
        _hubs.pop(run_id, None)


class Link:
    """The worker's end: buffered messages out, the stop signal in (as the two events a
    :class:`~conductor.exec.base.Request` watches), one exchange every ``FLUSH_S``."""

    def __init__(self, ray: Any, hub: Any, key: str) -> None:
        self.ray, self.hub, self.key = ray, hub, key
        self.cancel = threading.Event()  # TERM, grace, KILL
        self.kill_now = threading.Event()  # KILL at once
        self._out: list[Message] = []
        self._latest: dict[str, Message] = {}  # kinds where only the newest matters
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._heard = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="conductor-link", daemon=True)

    def start(self) -> Link:
        self._thread.start()
        return self

    def send(self, *message: Any) -> None:
        with self._lock:
            self._out.append(tuple(message))

    def latest(self, *message: Any) -> None:
        """Like ``send``, but an unsent earlier message of the same kind is replaced."""
        with self._lock:
            self._latest[str(message[0])] = tuple(message)

    def ask(self, question: Any) -> list[Any]:
        """Ask the runner and wait for the answer (the messages sent so far go first); an
        object-store ref in it is fetched."""
        self.flush()
        reply = self.ray.get(self.hub.ask.remote(self.key, question))
        return [self.ray.get(x) if isinstance(x, self.ray.ObjectRef) else x for x in reply]

    def where(self) -> tuple[str, str]:
        """(Ray node id, host name) of this worker."""
        import socket

        return str(self.ray.get_runtime_context().get_node_id()), socket.gethostname()

    def flush(self) -> None:
        with self._lock:
            items = [*self._out, *self._latest.values()]
            self._out, self._latest = [], {}
        try:
            level = self.ray.get(self.hub.post.remote(self.key, items), timeout=_CALL_TIMEOUT_S)
        except Exception:  # any Ray error: the runner or its node is gone (or going)
            if time.monotonic() - self._heard > LOST_AFTER_S:
                self.cancel.set()
                self.kill_now.set()
            with self._lock:
                self._out[:0] = items  # kept for the next try
            return
        self._heard = time.monotonic()
        if level >= STOP_CANCEL:
            self.cancel.set()
        if level >= STOP_KILL:
            self.kill_now.set()

    def _loop(self) -> None:
        while not self._closed.wait(FLUSH_S):
            self.flush()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=_CALL_TIMEOUT_S)
        self.flush()
