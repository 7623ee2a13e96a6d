"""The local executor: run one process on this machine, log its output, enforce its limits.

Each process is the leader of its own session and process group, so it can be stopped as a
whole with every child and grandchild it started (agents spawn shells, language servers,
dev servers). Its stdin is /dev/null (some agent CLIs wait for input while stdin is open);
stdout and stderr are merged into one pipe that is copied line by line to the log.

One thread per running task calls :meth:`LocalExecutor.run`, which blocks in ``poll`` on the
pipe and on a pidfd for the leader's exit, with a timeout computed from the nearest
deadline. Nothing sleeps on the happy path: a no-op command costs a fork/exec, a few
syscalls and two log lines.
"""

from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from conductor.errors import InfraError
from conductor.exec.procs import kill_group, kill_process_group, killpg, pidfd, process_start_time
from conductor.spec.durations import format_duration

_READ_CHUNK = 65536
_MAX_LINE = 65536  # a longer unterminated line is logged in pieces, so memory stays bounded
_DRAIN_S = 0.25  # after the leader exits, how long a grandchild may keep the pipe open
_EVENT_POLL_S = 0.05  # threading.Event cannot be polled on: check cancel/kill_now this often
_EXIT_POLL_S = 0.05  # without pidfd, check the leader's exit this often
_TICK_S = 1.0


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # None if killed before exiting on its own
    reason: str  # "exited" | "timeout" | "idle" | "cancelled" | "start_failed"
    duration_s: float
    pid: int | None
    error: str = ""  # e.g. "executable not found: claude", "timed out after 2h"

    @property
    def ok(self) -> bool:
        return self.reason == "exited" and self.exit_code == 0


# ---------------------------------------------------------------- output: lines and the log


def _utf8_cut(buf: bytes, limit: int) -> int:
    """A cut point <= limit that does not split a UTF-8 character."""
    for cut in range(limit, max(limit - 4, 0), -1):
        if (buf[cut] & 0xC0) != 0x80:  # not a continuation byte: a character starts here
            return cut
    return limit


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\r") else text


class _Lines:
    """Splits a byte stream into decoded lines; keeps the unterminated tail for later."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> list[str]:
        parts = (self._tail + data).split(b"\n")
        tail = parts.pop()
        lines = [_decode(p) for p in parts]
        while len(tail) > _MAX_LINE:
            cut = _utf8_cut(tail, _MAX_LINE)
            lines.append(_decode(tail[:cut]))
            tail = tail[cut:]
        self._tail = tail
        return lines

    def flush(self) -> list[str]:
        """The last line when the output did not end with a newline."""
        tail, self._tail = self._tail, b""
        return [_decode(tail)] if tail else []


class Sink:
    """Where lines go: redacted, then appended to the log and handed to ``on_line``."""

    def __init__(
        self,
        log_path: Path | None,
        on_line: Callable[[str], None] | None,
        redact: Callable[[str], str] | None,
    ) -> None:
        self._on_line, self._redact = on_line, redact
        self._fh: IO[str] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(log_path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115

    def emit(self, lines: list[str]) -> None:
        for line in lines:
            text = self._redact(line) if self._redact is not None else line
            if self._fh is not None:
                self._fh.write(text + "\n")
            if self._on_line is not None:
                self._on_line(text)
        if self._fh is not None and lines:
            self._fh.flush()  # flushed per chunk so `conductor logs -f` sees lines promptly

    def note(self, text: str) -> None:
        """A conductor line (header/footer): redacted, logged, not passed to on_line."""
        if self._fh is not None:
            self._fh.write((self._redact(text) if self._redact else text) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def _header(argv: Sequence[str], cwd: Path) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f"# conductor: started {stamp} in {cwd}: {shlex.join(argv)}"


def footer(res: ProcessResult) -> str:
    text = f"# conductor: {res.reason}, exit code {res.exit_code}, after {res.duration_s:.3f}s"
    return text + (f": {res.error}" if res.error else "")


def _start_error(argv: Sequence[str], cwd: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        if not Path(cwd).is_dir():
            return f"working directory not found: {cwd}"
        return f"executable not found: {argv[0]}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {argv[0]}"
    return f"could not start {argv[0]}: {exc}"


def human(seconds: float) -> str:
    """``7200`` → ``2h``; sub-10-second limits (tests, tight validators) keep their fraction."""
    return format_duration(seconds) if seconds >= 10 else f"{seconds:.3g}s"


# ---------------------------------------------------------------- the run loop


@dataclass(frozen=True)
class _Limits:
    grace_s: float
    timeout_s: float | None
    idle_s: float | None
    cancel: threading.Event | None
    kill_now: threading.Event | None
    on_tick: Callable[[float, float], None] | None


class _Watch:
    """One running process: its pipe, its deadlines, and why (if at all) it was stopped."""

    def __init__(self, proc: subprocess.Popen[bytes], sink: Sink, lim: _Limits, t0: float):
        assert proc.stdout is not None
        self.proc, self.sink, self.lim, self.t0 = proc, sink, lim, t0
        self.pgid = proc.pid  # start_new_session: the leader's pid is the group id
        self.fd = proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.pidfd = pidfd(proc.pid)
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN)
        if self.pidfd >= 0:
            self.poller.register(self.pidfd, select.POLLIN)
        self.lines = _Lines()
        self.pipe_open, self.exited, self.end = True, False, t0
        self.reason: str | None = None
        self.error = ""
        self.kill_at: float | None = None  # when the TERM we sent escalates to KILL
        self.killed = False  # KILL sent to the group
        self.drain_until: float | None = None  # leader gone, pipe still open: wait until
        self.group_done = False  # leftovers of the group already dealt with
        self.last_output = t0
        self.next_tick = t0 + _TICK_S

    def loop(self) -> None:
        while True:
            now = time.monotonic()
            self._enforce(now)
            if self.exited and not self.pipe_open:
                return
            if self.lim.on_tick is not None and not self.exited and now >= self.next_tick:
                self.lim.on_tick(now - self.t0, now - self.last_output)
                self.next_tick = now + _TICK_S
            wait = self._wait_s(now)
            timeout_ms = None if wait is None else int(wait * 1000) + 1
            for fd, _ in self.poller.poll(timeout_ms):
                if fd == self.fd:
                    self._read()
                elif fd == self.pidfd:
                    self._on_exit()
            if self.pidfd < 0 and not self.exited and self.proc.poll() is not None:
                self._on_exit()

    def _read(self) -> None:
        try:
            data = os.read(self.fd, _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.last_output = time.monotonic()
            self.sink.emit(self.lines.feed(data))
        else:
            self._close_pipe()

    def _close_pipe(self) -> None:
        if self.pipe_open:
            self.sink.emit(self.lines.flush())
            self.poller.unregister(self.fd)
            self.pipe_open, self.drain_until = False, None

    def _on_exit(self) -> None:
        self.proc.wait()  # the leader has exited: this reaps it without blocking
        self.exited, self.end = True, time.monotonic()
        if self.pidfd >= 0:
            self.poller.unregister(self.pidfd)
        if self.pipe_open:
            self.drain_until = self.end + _DRAIN_S

    def _enforce(self, now: float) -> None:
        if not self.exited:
            self._enforce_limits(now)
        elif self.drain_until is not None and now >= self.drain_until:
            if not self.group_done:
                # A leftover child holds the pipe open: stop the group, then read its last words.
                self._stop_leftovers()
                self.drain_until = time.monotonic() + _DRAIN_S
            else:
                self._close_pipe()  # held by something outside the group: stop waiting

    def _enforce_limits(self, now: float) -> None:
        lim = self.lim
        if lim.kill_now is not None and not self.killed and lim.kill_now.is_set():
            if self.reason is None:
                self.reason, self.error = "cancelled", "killed on request"
            self._signal(signal.SIGKILL)
        elif self.reason is None:
            why = self._trigger(now)
            if why is not None:
                self.reason, self.error = why
                self._signal(signal.SIGTERM)
                self.kill_at = now + lim.grace_s
        elif self.kill_at is not None and not self.killed and now >= self.kill_at:
            self._signal(signal.SIGKILL)

    def _trigger(self, now: float) -> tuple[str, str] | None:
        lim = self.lim
        if lim.cancel is not None and lim.cancel.is_set():
            return "cancelled", "cancelled"
        if lim.timeout_s is not None and now - self.t0 >= lim.timeout_s:
            return "timeout", f"timed out after {human(lim.timeout_s)}"
        if lim.idle_s is not None and now - self.last_output >= lim.idle_s:
            return "idle", f"no output for {human(lim.idle_s)}"
        return None

    def _wait_s(self, now: float) -> float | None:
        """Seconds until the next thing to check; None = only output or exit can matter."""
        lim, due = self.lim, []
        if not self.exited:
            if self.reason is None:
                if lim.timeout_s is not None:
                    due.append(self.t0 + lim.timeout_s - now)
                if lim.idle_s is not None:
                    due.append(self.last_output + lim.idle_s - now)
                if lim.cancel is not None:
                    due.append(_EVENT_POLL_S)
            elif self.kill_at is not None and not self.killed:
                due.append(self.kill_at - now)
            if lim.kill_now is not None and not self.killed:
                due.append(_EVENT_POLL_S)
            if self.pidfd < 0:
                due.append(_EXIT_POLL_S)
            if lim.on_tick is not None:
                due.append(self.next_tick - now)
        if self.drain_until is not None:
            due.append(self.drain_until - now)
        return max(0.0, min(due)) if due else None

    def _signal(self, sig: int) -> None:
        killpg(self.pgid, sig)
        if sig == signal.SIGKILL:
            self.killed = True

    def _stop_leftovers(self) -> None:
        """Agents leave children behind: stop what is left of the group once the leader is gone.
        If we already sent TERM (timeout, cancel) they had their warning, so KILL at once."""
        self.group_done = True
        if self.reason is not None:
            kill_group(self.pgid)
        else:
            kill_process_group(self.pgid, self.lim.grace_s)

    def cleanup(self) -> None:
        try:
            if not self.exited:  # a callback raised: never leave the process running
                killpg(self.pgid, signal.SIGKILL)
                self.proc.wait()
                kill_group(self.pgid)
            elif not self.group_done:
                self._stop_leftovers()
        finally:
            if self.pidfd >= 0:
                os.close(self.pidfd)
            assert self.proc.stdout is not None
            self.proc.stdout.close()

    def result(self) -> ProcessResult:
        code = self.proc.returncode if self.reason is None else None
        error = self.error
        if self.reason is None and code is not None and code < 0:
            try:
                error = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                error = f"killed by signal {-code}"
        return ProcessResult(code, self.reason or "exited", self.end - self.t0, self.pgid, error)


class Executor(Protocol):
    """Where an agent runs: this machine's processes (LocalExecutor) or a tmux pane
    (conductor.exec.tmux.TmuxExecutor). The attempt only ever calls ``run``."""

    grace_s: float

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path | None,
        timeout_s: float | None = None,
        idle_timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        kill_now: threading.Event | None = None,
        on_start: Callable[[int, float], None] | None = None,
        on_line: Callable[[str], None] | None = None,
        redact: Callable[[str], str] | None = None,
        on_tick: Callable[[float, float], None] | None = None,
    ) -> ProcessResult: ...


class LocalExecutor:
    """Runs processes on this machine. Thread-safe: runs share no state."""

    def __init__(self, grace_s: float = 5.0) -> None:
        self.grace_s = grace_s

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path | None,
        timeout_s: float | None = None,
        idle_timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        kill_now: threading.Event | None = None,
        on_start: Callable[[int, float], None] | None = None,
        on_line: Callable[[str], None] | None = None,
        redact: Callable[[str], str] | None = None,
        on_tick: Callable[[float, float], None] | None = None,
    ) -> ProcessResult:
        """Run ``argv`` to completion (or until a limit stops it) and say how it ended.

        ``env`` is the complete environment. ``log_path`` None runs without a log file
        (output reaches only ``on_line``), which is how validators capture output.
        Raises InfraError only when the log cannot be written; a command that cannot start
        is a ``start_failed`` result.
        """
        lim = _Limits(self.grace_s, timeout_s, idle_timeout_s, cancel, kill_now, on_tick)
        try:
            sink = Sink(log_path, on_line, redact)
        except OSError as exc:
            raise InfraError(f"cannot write log {log_path}: {exc}") from exc
        try:
            sink.note(_header(argv, cwd))
            result = _run(argv, cwd, env, sink, lim, on_start)
            sink.note(footer(result))
            return result
        finally:
            sink.close()


def _run(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    sink: Sink,
    lim: _Limits,
    on_start: Callable[[int, float], None] | None,
) -> ProcessResult:
    if any(ev is not None and ev.is_set() for ev in (lim.cancel, lim.kill_now)):
        return ProcessResult(None, "cancelled", 0.0, None, "cancelled before start")
    if not argv:
        return ProcessResult(None, "start_failed", 0.0, None, "empty command")
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,  # agents such as Codex wait for input while stdin is open
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            bufsize=0,
        )
    except (OSError, ValueError) as exc:
        error = _start_error(argv, cwd, exc) if isinstance(exc, OSError) else str(exc)
        return ProcessResult(None, "start_failed", time.monotonic() - t0, None, error)
    try:
        watch = _Watch(proc, sink, lim, t0)
    except BaseException:
        killpg(proc.pid, signal.SIGKILL)  # never leave an unwatched process behind
        proc.wait()
        raise
    try:
        if on_start is not None:
            on_start(proc.pid, process_start_time(proc.pid) or time.time())
        watch.loop()
    finally:
        watch.cleanup()
    return watch.result()
