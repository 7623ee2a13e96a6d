"""The tmux executor: drive an interactive agent in a detached tmux session, one per attempt.

Some agents only run interactively: they draw a prompt and read a terminal. tmux gives them
a real terminal, lets conductor type into it (``send-keys``) and read it (``capture-pane``),
and lets a person attach to watch or take over (``conductor attach RUN TASK``).

Sessions live on conductor's own server (``tmux -L conductor``) started without a config file
(``-f /dev/null``): the user's tmux server and settings are never touched, and panes behave
the same everywhere. ``remain-on-exit`` keeps a dead agent's pane, so its last lines are read.

An attempt goes: start the session; wait until the agent is ready (its prompt pattern shows,
or the pane settles); type the prompt, wait ``send_delay_s`` (TUIs drop an Enter that arrives
with a paste), press Enter; then poll the pane until it is done:

* ``prompt``: the prompt pattern shows again below the line the prompt was typed on, and the
  pane has been quiet for ``settle_s``;
* ``idle``: the pane's content stays unchanged for ``idle_s`` (the engine's output checks and
  validators then decide whether the agent really finished);
* ``shell``: only the agent's exit ends the attempt (a one-shot agent, or one told to quit).

The agent always runs under ``sh -c '"$@"; echo __CONDUCTOR_EXIT=$?'``: in every mode an agent
that exits ends the attempt, with the real exit status that line carries. (tmux's own
``pane_dead_status`` is not reliable: tmux 3.3a sometimes leaves the pane's process unreaped.)

Each poll appends the pane's new lines to the attempt's log. Stopping (completion, timeout,
idle, cancel) sends TERM to the pane's process group, KILL after the grace period, then kills
the session, then sweeps the request's marker (what left the group).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from conductor.errors import InfraError
from conductor.exec.base import (
    CANCELLED_BEFORE_START,
    DEFAULT_GRACE_S,
    ProcessResult,
    Reason,
    Request,
)
from conductor.exec.busy import IdleClock
from conductor.exec.output import Sink, footer, human
from conductor.exec.panes import (
    EXIT_LINE,
    HEIGHT,
    SOCKET,
    STATUS_WAIT_S,
    WRAPPER,
    Pane,
    Snap,
    StartFailed,
    session_name,
    tmux_available,
)
from conductor.exec.procs import process_start_time, stop_tree
from conductor.exec.sweep import sweep

Completion = Literal["prompt", "idle", "shell"]
COMPLETIONS: tuple[str, ...] = ("prompt", "idle", "shell")
_TICK_S = 1.0  # how often the tick callback (timeout warnings) runs
_SHOWN_LINES = 5  # pane lines quoted when the prompt has not shown at half the timeout
# Whitespace at the end of a pattern, before an optional `$`: `\s*`, `\ `, ` +`, `[ ]`...
_TRAILING_SPACE = re.compile(r"(?<![^\\]\\)(?:(?:\\s|\\ |\\t|\[ \]| |\t)[*+?]?)+(\$?)\Z")


def pane_pattern(text: str) -> re.Pattern[str]:
    """The prompt pattern as it matches what a person sees: captured pane lines have their
    trailing spaces trimmed, so a pattern written as the prompt looks (`^agent> $`) drops
    its own trailing whitespace too (`^agent>$`)."""
    return re.compile(_TRAILING_SPACE.sub(r"\1", text))


# ---------------------------------------------------------------- the log


class _PaneLog:
    """Appends the pane's new lines to the log. tmux keeps the whole history, so each poll
    sees every line; those already logged are skipped. The last line is held back until
    another follows it: the agent may still be writing it (a prompt, a progress bar).

    An agent that redraws its screen (a full-screen TUI) breaks that append-only view: the
    log then keeps what was streamed before, plus the final screen when the attempt ends."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.count = 0
        self.last = ""
        self.redrawn = False

    def update(self, lines: list[str], final: bool = False) -> None:
        if self.count and (len(lines) < self.count or lines[self.count - 1] != self.last):
            self.redrawn = True
        if self.redrawn:
            if final:
                self.sink.note("# conductor: the agent redrew its screen; its final screen:")
                self.sink.emit(lines[-HEIGHT:])
            return
        end = len(lines) if final else len(lines) - 1
        if end > self.count:
            self.sink.emit(lines[self.count : end])
            self.count, self.last = end, lines[end - 1]


# ---------------------------------------------------------------- the polling loop


_Outcome = tuple[Reason, int | None, str]  # reason, exit code, error


class _Drive:
    """Polls one pane: readiness, typing the prompt, completion, limits."""

    def __init__(self, ex: TmuxExecutor, pane: Pane, log: _PaneLog, lim: Request, pid: int) -> None:
        self.ex, self.pane, self.log, self.lim = ex, pane, log, lim
        self.t0 = time.monotonic()
        self.idle = IdleClock(lim, pid, log.sink.note, self.t0)  # the pane's pid leads its group
        self.phase = "ready" if ex.prompt_text else "working"
        self.base = -1  # the line the prompt was typed on; completion shows below it
        self.enter_at = 0.0
        self.digest = b""
        self.changed = self.t0  # when the pane's content last changed
        self.next_tick = self.t0 + _TICK_S
        self.dead_at = 0.0  # when the pane was first seen dead
        self.warned = False  # the prompt has not shown at half the timeout: said once

    def loop(self) -> _Outcome:
        while True:
            now = time.monotonic()
            snap = self.pane.snapshot()
            if snap is None:
                return "exited", None, "the tmux session was closed from outside"
            self.log.update(snap.lines)
            if snap.digest != self.digest:
                self.digest, self.changed = snap.digest, now
                self.idle.heard(now)
            outcome = self._finished(snap, now) or self._limit(now)
            if outcome is not None:
                return outcome
            self._advance(snap, now)
            self._still_no_prompt(snap, now)
            if self.lim.on_tick is not None and now >= self.next_tick:
                self.lim.on_tick(now - self.t0, now - self.changed)
                self.next_tick = now + _TICK_S
            time.sleep(self.ex.poll_s)

    def _finished(self, snap: Snap, now: float) -> _Outcome | None:
        ex = self.ex
        for line in reversed(snap.lines[self.base + 1 :]):
            if m := EXIT_LINE.match(line):
                return "exited", int(m.group(1)), ""
        if snap.dead:  # without the exit line: the wrapper itself was killed
            self.dead_at = self.dead_at or now
            if snap.status is not None or now - self.dead_at >= STATUS_WAIT_S:
                unknown = "the agent's shell was killed" if snap.status is None else ""
                return "exited", snap.status, unknown
            return None
        if self.phase != "working":
            return None
        quiet = now - self.changed
        if ex.completion == "idle" and quiet >= ex.idle_s:
            self.log.sink.note(f"# conductor: pane unchanged for {human(ex.idle_s)}: finished")
            return "exited", 0, ""
        if ex.completion == "prompt" and quiet >= ex.settle_s and self._prompt_at(snap) > self.base:
            return "exited", 0, ""
        return None

    def _limit(self, now: float) -> _Outcome | None:
        req, lim = self.lim, self.lim.limits
        if req.kill_now is not None and req.kill_now.is_set():
            return "cancelled", None, "killed on request"
        if req.cancel is not None and req.cancel.is_set():
            return "cancelled", None, "cancelled"
        if lim.timeout_s is not None and now - self.t0 >= lim.timeout_s:
            return "timeout", None, f"timed out after {human(lim.timeout_s)}"
        if lim.idle_s is not None and self.idle.expired(now):
            return "idle", None, f"no output for {human(lim.idle_s)}"
        return None

    def _still_no_prompt(self, snap: Snap, now: float) -> None:
        """At half the timeout, say once that the prompt pattern has not shown (a pattern
        that never matches otherwise ends in a bare "timed out"), with the pane's last lines."""
        timeout, ex = self.lim.limits.timeout_s, self.ex
        waiting = self.phase == "ready" or (self.phase == "working" and ex.completion == "prompt")
        if self.warned or ex.pattern is None or not waiting or timeout is None:
            return
        if now - self.t0 < timeout / 2:
            return
        self.warned = True
        shown = [ln for ln in snap.lines if ln.strip()][-_SHOWN_LINES:]
        what = "before typing the prompt" if self.phase == "ready" else "after the prompt"
        text = (f"prompt_pattern {ex.pattern.pattern!r} has not matched {what} after "
                f"{human(now - self.t0)} (half the timeout); the pane's last lines: "
                + " | ".join(shown or ["(empty)"]))  # fmt: skip
        self.log.sink.note("# conductor: " + text)
        if ex.warn is not None:
            ex.warn(text)

    def _advance(self, snap: Snap, now: float) -> None:
        """Type the prompt once the agent is ready; press Enter ``send_delay_s`` later."""
        if self.phase == "ready" and self._ready(snap, now):
            self.base = self._prompt_at(snap) if self.ex.pattern else len(snap.lines) - 1
            self.pane.type_text(self.ex.prompt_text)
            self.phase, self.enter_at = "sent", now + self.ex.send_delay_s
        elif self.phase == "sent" and now >= self.enter_at:
            self.pane.press_enter()
            self.phase, self.changed = "working", now
            self.idle.heard(now)

    def _ready(self, snap: Snap, now: float) -> bool:
        if self.ex.pattern is not None:
            return self._prompt_at(snap) >= 0
        return bool(snap.lines) and now - self.changed >= self.ex.settle_s

    def _prompt_at(self, snap: Snap) -> int:
        """The index of the last line matching the prompt pattern, -1 if none."""
        pattern = self.ex.pattern
        if pattern is not None:
            for i in range(len(snap.lines) - 1, -1, -1):
                if pattern.search(snap.lines[i]):
                    return i
        return -1


# ---------------------------------------------------------------- the executor


def _precheck(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> str | None:
    """Why the agent cannot start, found before a session is made for it."""
    if not tmux_available():
        return "tmux is not installed (e.g. apt-get install tmux)"
    if not argv:
        return "empty command"
    if not Path(cwd).is_dir():
        return f"working directory not found: {cwd}"
    if shutil.which(argv[0], path=env.get("PATH", os.defpath)) is None:
        return f"executable not found: {argv[0]}"
    return None


def _session_for(env: Mapping[str, str], prefix: str) -> str:
    run, task = env.get("CONDUCTOR_RUN_ID"), env.get("CONDUCTOR_TASK_ID")
    if run and task:
        return session_name(run, task, env.get("CONDUCTOR_ATTEMPT", "1"), prefix)
    return f"{prefix}-adhoc-{os.getpid()}-{os.urandom(3).hex()}"  # outside a run: unique


class TmuxExecutor:
    """Runs an interactive agent in tmux; :meth:`run` has the signature and result of
    :meth:`conductor.exec.local.LocalExecutor.run`. One instance per attempt (the prompt is
    the attempt's); runs share no state, so threads may each use their own."""

    def __init__(
        self,
        prompt_text: str,
        completion: Completion = "prompt",
        prompt_pattern: str | None = None,
        idle_s: float = 5.0,
        send_delay_s: float = 0.5,
        session_prefix: str = "conductor",
        *,
        grace_s: float = DEFAULT_GRACE_S,
        settle_s: float = 1.0,
        poll_s: float = 0.2,
        socket: str = SOCKET,
        warn: Callable[[str], object] | None = None,
    ) -> None:
        if completion not in COMPLETIONS:
            raise ValueError(f"completion must be one of {', '.join(COMPLETIONS)}: {completion}")
        if completion == "prompt" and not prompt_pattern:
            raise ValueError("completion `prompt` needs a prompt_pattern")
        try:
            self.pattern = pane_pattern(prompt_pattern) if prompt_pattern else None
        except re.error as exc:
            raise ValueError(f"bad prompt_pattern {prompt_pattern!r}: {exc}") from exc
        # A newline would press Enter mid-prompt: an interactive prompt is one line.
        self.prompt_text = " ".join(prompt_text.split("\n")).strip()
        self.completion = completion
        self.idle_s, self.send_delay_s, self.settle_s = idle_s, send_delay_s, settle_s
        self.session_prefix, self.grace_s, self.poll_s = session_prefix, grace_s, poll_s
        self.socket = socket
        self.warn = warn  # a task warning: the prompt has not shown at half the timeout

    def run(self, request: Request) -> ProcessResult:
        """Run the request's command in a tmux session until it is done or a limit stops it.

        The session is named from ``CONDUCTOR_RUN_ID``/``CONDUCTOR_TASK_ID``/
        ``CONDUCTOR_ATTEMPT`` in its env (see :func:`session_name`); ``pid`` in the result
        and in ``on_start`` is the pane's process, the leader of its process group."""
        if request.sandbox is not None:  # never unconfined: preflight says so first
            return ProcessResult(None, "start_failed", 0.0, None, "no sandbox in tmux panes")
        try:
            sink = Sink(request.log_path, request.on_line, request.redact)
        except OSError as exc:
            raise InfraError(f"cannot write log {request.log_path}: {exc}") from exc
        try:
            name = _session_for(request.env, self.session_prefix)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            sink.note(
                f"# conductor: started {stamp} in {request.cwd}: {shlex.join(request.argv)}"
                f" (tmux session {name}; watch: tmux -L {self.socket} attach -t ={name})"
            )
            result = self._run(request, Pane(self.socket, name), sink)
            sink.note(footer(result))
        finally:
            sink.close()
        return sink.told(result)

    def _run(self, req: Request, pane: Pane, sink: Sink) -> ProcessResult:
        if req.stopped_before_start():
            return CANCELLED_BEFORE_START
        t0 = time.monotonic()
        pid: int | None = None
        error = _precheck(req.argv, req.cwd, req.env)
        if error is None:
            self._reap_stale(pane, sink)
            try:
                argv = ["/bin/sh", "-c", WRAPPER, "sh", *req.argv]
                pid = pane.start(argv, req.cwd, req.full_env())
            except StartFailed as exc:
                error = str(exc)
        if pid is None:
            return ProcessResult(None, "start_failed", time.monotonic() - t0, None, error or "")
        log = _PaneLog(sink)
        outcome: _Outcome | None = None
        grace = self.grace_s if req.limits.grace_s is None else req.limits.grace_s
        try:
            if req.on_start is not None:
                req.on_start(pid, process_start_time(pid) or time.time())
            outcome = _Drive(self, pane, log, req, pid).loop()
        finally:
            hard = outcome is None or (req.kill_now is not None and req.kill_now.is_set())
            try:
                self._finish(pane, pid, log, req.kill_now, 0.0 if hard else grace)
            finally:
                if req.mark:  # what left the pane's group: setsid, double forks, daemons
                    sweep(req.mark, 0.0 if hard else grace, req.kill_now)
        reason, code, error = outcome
        return ProcessResult(code, reason, time.monotonic() - t0, pid, error or "")

    def _finish(
        self, pane: Pane, pgid: int, log: _PaneLog, kill_now: threading.Event | None, grace: float
    ) -> None:
        """Stop the agent's process group, log the pane's last lines, remove the session."""
        try:
            stop_tree(pgid, grace, kill_now)
            final = pane.snapshot()
            if final is not None:
                log.update(final.lines, final=True)
        finally:
            pane.kill()

    def _reap_stale(self, pane: Pane, sink: Sink) -> None:
        """A session of this attempt left by a conductor that died: its agent is an orphan."""
        pid = pane.pane_pid()
        if pid is None:
            return
        sink.note(f"# conductor: removing a stale tmux session {pane.name} (pane pid {pid})")
        stop_tree(pid, 0.0)
        pane.kill()
