"""Ctrl-C and SIGTERM while a run is driven: routed to the runner, held until it exists."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType


class Deferred:
    """A signal target that remembers calls until the real handler exists."""

    def __init__(self) -> None:
        self.calls = 0
        self.target: Callable[[], None] | None = None

    def __call__(self) -> None:
        if self.target is None:
            self.calls += 1
        else:
            self.target()

    def attach(self, target: Callable[[], None]) -> None:
        self.target = target
        for _ in range(self.calls):
            target()


def install_signals(handler: Callable[[], None]) -> Callable[[], None]:
    """Route SIGINT/SIGTERM to the runner; returns a function restoring the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        handler()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore
