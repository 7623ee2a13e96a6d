"""Crash points for the chaos tests: `CONDUCTOR_CRASH_AT=step[:n]` SIGKILLs the runner.

A real kill -9 at a precise lifecycle step (the n-th time it is reached), so the
tests can prove resume is correct at each step, not only at random moments.
"""

from __future__ import annotations

import os
import signal
import threading

_SPEC = os.environ.get("CONDUCTOR_CRASH_AT", "")
_counts: dict[str, int] = {}
_lock = threading.Lock()


def crash_point(step: str) -> None:
    if not _SPEC:
        return
    name, _, nth = _SPEC.partition(":")
    if name != step:
        return
    with _lock:
        _counts[step] = _counts.get(step, 0) + 1
        if _counts[step] >= int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)
