"""Busy is not idle: is a command that has been silent for its ``idle_s`` hung, or working?

An agent running a test suite through one of its tools prints nothing until the suite
ends, and ``idle_timeout`` is there to stop agents that hang, not agents waiting on their
own work. So before an executor stops a silent command as idle it asks two things:

* the request's ``busy`` callback: the attempt wires it to the agent's output parser,
  which knows when a tool call was started and its result has not come yet;
* the CPU its processes use: user + system time of every live process of its group or
  carrying its marker (what left the group), read from /proc halfway through the silent
  stretch and again at its end. A tree that used at least ``CPU_SHARE`` of one CPU in
  between is working (a build, a test suite); one waiting on a stalled stream or
  sleeping uses next to nothing.

Either one restarts the idle clock, and the log says so (once per cause), so a user who
sees an agent outlive its idle_timeout knows why. ``timeout`` still stops it. While output
flows nothing is read from /proc; a silent stretch costs two scans per ``idle_s``.
"""

from __future__ import annotations

from collections.abc import Callable

from conductor.exec.base import Request
from conductor.exec.output import human
from conductor.exec.procs import cpu_times

# The share of one CPU over the sampled window above which a silent tree is working. An
# agent CLI waiting on the network uses well under 1%; a compiler or a test run near 100%.
CPU_SHARE = 0.05

_Sample = tuple[float, dict[tuple[int, int], float]]  # (when, cpu_times)


def cpu_used(before: dict[tuple[int, int], float], after: dict[tuple[int, int], float]) -> float:
    """CPU seconds used between two samples; a process new in ``after`` counts whole."""
    return sum(max(0.0, t - before.get(key, 0.0)) for key, t in after.items())


class IdleClock:
    """The idle clock of one running command: restarted by its output, and by being found
    busy when it runs out. The executor calls :meth:`heard` on output, :meth:`expired` on
    every pass of its loop, and sleeps no longer than :meth:`due`."""

    def __init__(self, req: Request, pgid: int, note: Callable[[str], None], now: float) -> None:
        self.idle_s = req.limits.idle_s
        self.busy, self.mark, self.pgid, self.note = req.busy, req.mark, pgid, note
        self.since = now  # the last output, or the last time it was found busy
        self.sample: _Sample | None = None  # CPU baseline of the current silent stretch
        self.noted: set[str] = set()

    def heard(self, now: float) -> None:
        self.since, self.sample = now, None

    def due(self) -> float | None:
        """When :meth:`expired` has something to do next (None: never)."""
        if self.idle_s is None:
            return None
        return self.since + self.idle_s / (2 if self.sample is None else 1)

    def expired(self, now: float) -> bool:
        """True when the command has been silent for ``idle_s`` and is not busy."""
        if self.idle_s is None or now - self.since < self.idle_s / 2:
            return False
        if self.sample is None:  # halfway through the silence: the CPU baseline
            self.sample = (now, cpu_times(self.pgid, self.mark))
        if now - self.since < self.idle_s:
            return False
        why = self._busy(now)
        if why is None:
            return True
        kind, text = why
        if kind not in self.noted:
            self.noted.add(kind)
            self.note(f"# conductor: no output for {human(now - self.since)}, but busy "
                      f"({text}): not idle, the idle clock restarts")  # fmt: skip
        self.heard(now)
        return False

    def _busy(self, now: float) -> tuple[str, str] | None:
        if self.busy is not None and self.busy():
            return "call", "a tool call is in flight"
        if self.sample is not None and now > self.sample[0]:
            window = now - self.sample[0]
            used = cpu_used(self.sample[1], cpu_times(self.pgid, self.mark))
            if used >= CPU_SHARE * window:
                return "cpu", f"its processes used {used:.2f}s of CPU in {human(window)}"
        return None
