"""The executor contract: one :class:`Request` in, one :class:`ProcessResult` out.

Like an HTTP transport that takes one request object, an executor is handed everything a
run of one command needs — argv, environment, working directory, limits, where its output
goes and the signals that stop it — and reports how the command ended. The engine never
knows whether the command ran here (:class:`~conductor.exec.local.LocalExecutor`), in a tmux
pane (:class:`~conductor.exec.tmux.TmuxExecutor`) or nowhere at all
(:class:`~conductor.exec.fake.FakeExecutor`, for tests of the engine).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from conductor.exec.sandbox import SandboxPolicy

MARK_VAR = "CONDUCTOR_PROCESS_MARK"  # see Request.mark and conductor.exec.sweep.sweep
DEFAULT_GRACE_S = 5.0  # between the TERM that asks a process tree to stop and the KILL

# How a command ended: on its own, or stopped by one of its limits, or never started.
Reason = Literal["exited", "timeout", "idle", "cancelled", "start_failed"]


@dataclass(frozen=True)
class Limits:
    """When to stop a command. ``grace_s`` None means the executor's own default."""

    timeout_s: float | None = None
    idle_s: float | None = None  # no output for this long: hung, not finished
    grace_s: float | None = None


@dataclass(frozen=True)
class Request:
    """One command to run, with everything that decides how it runs and where output goes.

    ``env`` is the complete environment. ``log_path`` None runs without a log file (output
    reaches only ``on_line``), which is how validators and hooks capture output. ``redact``
    masks secrets in every line before it reaches the log or ``on_line``. ``cancel`` stops
    the command gracefully (TERM, grace, KILL); ``kill_now`` stops it at once. ``mark``
    (from :func:`conductor.exec.sweep.new_mark`) is put in the command's environment as
    ``CONDUCTOR_PROCESS_MARK``; when the command ends, however it ends, the executor stops
    every process still carrying it, including those that left the process group.
    ``busy`` says the command is working though silent (an agent's tool call in flight):
    asked, with the CPU its processes use, before ``idle_s`` stops it (see exec/busy.py).
    ``sandbox`` confines the command (exec/sandbox.py); an executor that cannot confine
    it fails to start it (``start_failed``) rather than run it unconfined.
    """

    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str]
    log_path: Path | None = None
    limits: Limits = field(default_factory=Limits)
    cancel: threading.Event | None = None
    kill_now: threading.Event | None = None
    stdin: bytes | None = None  # None: /dev/null (agent CLIs wait for input on an open stdin)
    on_start: Callable[[int, float], None] | None = None  # (pid, start time) once it runs
    on_line: Callable[[str], None] | None = None  # every output line, redacted
    on_tick: Callable[[float, float], None] | None = None  # (elapsed, idle) about once a second
    redact: Callable[[str], str] | None = None
    mark: str | None = None
    busy: Callable[[], bool] | None = None  # True: silent but working, not idle
    sandbox: SandboxPolicy | None = None  # confine it (exec/sandbox.py); None: not confined

    def full_env(self) -> dict[str, str]:
        """``env`` plus the marker, as the command sees it."""
        env = dict(self.env)
        if self.mark:
            env[MARK_VAR] = self.mark
        return env

    def stopped_before_start(self) -> bool:
        return any(ev is not None and ev.is_set() for ev in (self.cancel, self.kill_now))


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # None if killed before exiting on its own
    reason: Reason
    duration_s: float
    pid: int | None
    error: str = ""  # e.g. "executable not found: claude", "timed out after 2h"
    # why the command's log stopped being written (a full disk): the command itself ran on
    log_fault: OSError | None = None
    # what a sandbox refused it: (what, how many times), e.g. ("evil.example:443", 2)
    refused: tuple[tuple[str, int], ...] = ()

    @property
    def ok(self) -> bool:
        return self.reason == "exited" and self.exit_code == 0


CANCELLED_BEFORE_START = ProcessResult(None, "cancelled", 0.0, None, "cancelled before start")


class Executor(Protocol):
    """Where a command runs. The attempt, validators and hooks only ever call ``run``."""

    def run(self, request: Request) -> ProcessResult: ...
