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
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from conductor.errors import InfraError
from conductor.exec.base import (
    CANCELLED_BEFORE_START,
    DEFAULT_GRACE_S,
    Limits,
    ProcessResult,
    Reason,
    Request,
)
from conductor.exec.busy import IdleClock
from conductor.exec.output import Lines, Sink, footer, header, human
from conductor.exec.procs import killpg, pidfd, process_start_time, stop_tree
from conductor.exec.sweep import disown, own, owning, sweep

if TYPE_CHECKING:
    from conductor.exec.sandbox import Confinement

_READ_CHUNK = 65536
_DRAIN_S = 0.25  # after the leader exits, how long a grandchild may keep the pipe open
_EVENT_POLL_S = 0.05  # threading.Event cannot be polled on: check cancel/kill_now this often
_EXIT_POLL_S = 0.05  # without pidfd, check the leader's exit this often
_TICK_S = 1.0


def _start_error(argv: Sequence[str], cwd: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        if not Path(cwd).is_dir():
            return f"working directory not found: {cwd}"
        return f"executable not found: {argv[0]}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {argv[0]}"
    return f"could not start {argv[0]}: {exc}"


# ---------------------------------------------------------------- the run loop


class _Watch:
    """One running process: its pipe, its deadlines, and why (if at all) it was stopped."""

    def __init__(
        self, proc: subprocess.Popen[bytes], sink: Sink, req: Request, grace_s: float, t0: float
    ) -> None:
        assert proc.stdout is not None
        self.proc, self.sink, self.lim, self.t0 = proc, sink, req, t0
        self.grace_s = grace_s
        self.pgid = proc.pid  # start_new_session: the leader's pid is the group id
        self.fd = proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.pidfd = pidfd(proc.pid)
        self.poller = select.poll()
        self.poller.register(self.fd, select.POLLIN)
        if self.pidfd >= 0:
            self.poller.register(self.pidfd, select.POLLIN)
        self.lines = Lines()
        self.pipe_open, self.exited, self.end = True, False, t0
        self.reason: Reason | None = None
        self.error = ""
        self.kill_at: float | None = None  # when the TERM we sent escalates to KILL
        self.killed = False  # KILL sent to the group
        self.drain_until: float | None = None  # leader gone, pipe still open: wait until
        self.group_done = False  # leftovers of the group already dealt with
        self.last_output = t0
        self.idle = IdleClock(req, proc.pid, sink.note, t0)  # busy is not idle
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
            self.idle.heard(self.last_output)
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
                self.kill_at = now + self.grace_s
        elif self.kill_at is not None and not self.killed and now >= self.kill_at:
            self._signal(signal.SIGKILL)

    def _trigger(self, now: float) -> tuple[Reason, str] | None:
        lim = self.lim.limits
        if self.lim.cancel is not None and self.lim.cancel.is_set():
            return "cancelled", "cancelled"
        if lim.timeout_s is not None and now - self.t0 >= lim.timeout_s:
            return "timeout", f"timed out after {human(lim.timeout_s)}"
        if lim.idle_s is not None and self.idle.expired(now):
            return "idle", f"no output for {human(lim.idle_s)}"
        return None

    def _wait_s(self, now: float) -> float | None:
        """Seconds until the next thing to check; None = only output or exit can matter."""
        lim, due = self.lim, []
        if not self.exited:
            if self.reason is None:
                if lim.limits.timeout_s is not None:
                    due.append(self.t0 + lim.limits.timeout_s - now)
                if (idle_due := self.idle.due()) is not None:
                    due.append(idle_due - now)
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
        stop_tree(self.pgid, 0.0 if self.reason is not None else self.grace_s, self.lim.kill_now)

    def cleanup(self) -> None:
        try:
            if not self.exited:  # a callback raised: never leave the process running
                killpg(self.pgid, signal.SIGKILL)
                self.proc.wait()
                stop_tree(self.pgid, 0.0)
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


class LocalExecutor:
    """Runs processes on this machine. Thread-safe: runs share no state."""

    def __init__(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.grace_s = grace_s

    def run(self, request: Request) -> ProcessResult:
        """Run the request's command to completion (or until a limit stops it) and say how
        it ended. Raises InfraError only when the log cannot be written; a command that
        cannot start is a ``start_failed`` result."""
        try:
            sink = Sink(request.log_path, request.on_line, request.redact)
        except OSError as exc:
            raise InfraError(f"cannot write log {request.log_path}: {exc}") from exc
        try:
            sink.note(header(request.argv, request.cwd))
            grace = self.grace_s if request.limits.grace_s is None else request.limits.grace_s
            result = _run(request, sink, grace)
            sink.note(footer(result))
        finally:
            sink.close()
        return sink.told(result)  # a log the disk stopped taking: the caller decides


def _stdin(data: bytes | None) -> IO[bytes] | int:
    """/dev/null, or a temp file holding ``data``: a file never blocks the writer the way a
    pipe to a process that does not read would."""
    if data is None:
        return subprocess.DEVNULL
    import tempfile  # only hooks send stdin: not at import, for start-up

    fh = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _run once the child has it)
    fh.write(data)
    fh.seek(0)
    return fh


def _run(req: Request, sink: Sink, grace_s: float) -> ProcessResult:
    box = None
    try:
        if req.sandbox is not None:
            from conductor.exec.sandbox import Confinement  # only sandboxed runs need it

            box = Confinement(req.sandbox, req.argv, req.full_env())
            sink.note(f"# conductor: sandbox: {req.sandbox.describe()}")
        result = _start(req, sink, grace_s, box)
        return box.finished(result, sink.note) if box is not None else result
    finally:
        if box is not None:
            box.close()
        if req.mark:
            # Whatever the ending (exit, a limit, cancel, a start failure, an exception):
            # what left the group (setsid, double fork, daemons) still carries the marker,
            # and with the leader reaped it is among the runner's orphans (adopted).
            hard = req.kill_now is not None and req.kill_now.is_set()
            sweep(req.mark, 0.0 if hard else grace_s, req.kill_now, adopted=True)


def _start(req: Request, sink: Sink, grace_s: float, box: Confinement | None) -> ProcessResult:
    if req.stopped_before_start():
        return CANCELLED_BEFORE_START
    if not req.argv:
        return ProcessResult(None, "start_failed", 0.0, None, "empty command")
    argv = box.argv if box is not None else list(req.argv)
    t0 = time.monotonic()
    stdin = _stdin(req.stdin)
    try:
        with owning():  # registered before any reaper could see it exit
            proc = subprocess.Popen(
                argv,
                cwd=req.cwd,
                env=box.env if box is not None else req.full_env(),
                pass_fds=box.pass_fds if box is not None else (),
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopped as a whole, grandchildren too
                bufsize=0,
            )
            own(proc.pid)
        if box is not None:
            box.started()  # bwrap waits for this before it starts the command
    except (OSError, ValueError) as exc:
        error = _start_error(argv, req.cwd, exc) if isinstance(exc, OSError) else str(exc)
        return ProcessResult(None, "start_failed", time.monotonic() - t0, None, error)
    finally:
        if not isinstance(stdin, int):
            stdin.close()
    return _watch(proc, req, sink, grace_s, t0)


def _watch(
    proc: subprocess.Popen[bytes], req: Request, sink: Sink, grace_s: float, t0: float
) -> ProcessResult:
    try:
        watch = _Watch(proc, sink, req, grace_s, t0)
    except BaseException:
        killpg(proc.pid, signal.SIGKILL)  # never leave an unwatched process behind
        proc.wait()
        disown(proc.pid)
        raise
    try:
        if req.on_start is not None:
            req.on_start(proc.pid, process_start_time(proc.pid) or time.time())
        watch.loop()
    finally:
        try:
            watch.cleanup()
        finally:
            disown(proc.pid)  # reaped by now (cleanup waits for the leader)
    return watch.result()


def capture(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], timeout_s: float
) -> tuple[ProcessResult, list[str]]:
    """Run a short command (a `--version` probe) and keep its output lines."""
    lines: list[str] = []
    limits = Limits(timeout_s=timeout_s, grace_s=1.0)
    request = Request(argv, cwd=cwd, env=env, limits=limits, on_line=lines.append)
    return LocalExecutor().run(request), lines
