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
the session.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn

from conductor.errors import InfraError
from conductor.exec.base import (
    CANCELLED_BEFORE_START,
    DEFAULT_GRACE_S,
    ProcessResult,
    Reason,
    Request,
)
from conductor.exec.output import Sink, footer, human
from conductor.exec.procs import process_start_time, stop_tree

Completion = Literal["prompt", "idle", "shell"]
COMPLETIONS: tuple[str, ...] = ("prompt", "idle", "shell")
SOCKET = "conductor"
EXIT_MARKER = "__CONDUCTOR_EXIT="

_MARKER = re.compile(r"^__CONDUCTOR_EXIT=(\d+)$")
_DEAD_NOTE = re.compile(r"^Pane is dead \(")  # tmux's remain-on-exit banner, not the agent's
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")  # `.` and `:` separate window and pane in a target
_WIDTH, _HEIGHT = 200, 50
_HISTORY = 100_000  # lines of scrollback, so a long answer is still there for the log
_CMD_TIMEOUT_S = 15.0
_TICK_S = 1.0
_STATUS_WAIT_S = 0.5  # a dead pane without the exit line: how long to wait for tmux's status
_WRAPPER = f'"$@"; echo "{EXIT_MARKER}$?"'

# Runs first in the pane: replaces tmux's environment (the server's, inherited from whoever
# started it) with exactly the attempt's, which it reads from a private file it then deletes,
# so secret values never appear in a command line. tmux's own TERM/TMUX describe the pane.
_LAUNCHER = (
    "import json,os,sys\n"
    "p=sys.argv[1]\n"
    "with open(p) as f: env=json.load(f)\n"
    "os.unlink(p)\n"
    "env.update({k:os.environ[k] for k in ('TERM','TMUX','TMUX_PANE') if k in os.environ})\n"
    "a=sys.argv[2:]\n"
    "try: os.execvpe(a[0],a,env)\n"
    "except OSError as e: print('conductor: cannot start',a[0]+':',e,flush=True); sys.exit(127)\n"
)


# ---------------------------------------------------------------- names and the tmux client


def session_name(run_id: str, task_id: str, attempt: int | str, prefix: str = "conductor") -> str:
    """The session of one attempt. Characters tmux cannot take become `_`, plus a short hash
    of the original, so tasks `a.b` and `a_b` never share a session."""
    raw = f"{prefix}-{run_id}-{task_id}-{attempt}"
    safe = _UNSAFE.sub("_", raw)
    if safe != raw:
        safe += "-" + hashlib.sha1(raw.encode()).hexdigest()[:6]
    return safe


def attach_argv(
    run_id: str,
    task_id: str,
    attempt: int | str,
    prefix: str = "conductor",
    socket: str = SOCKET,
) -> list[str]:
    """The command that attaches a terminal to the attempt's session (`=`: exact name only)."""
    name = session_name(run_id, task_id, attempt, prefix)
    return ["tmux", "-L", socket, "attach", "-t", "=" + name]


def tmux_available() -> bool:
    return shutil.which("tmux") is not None


def _client_env() -> dict[str, str]:
    # Inside a user's tmux, TMUX names their server: our commands name their own socket.
    return {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}


def tmux(socket: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One tmux client command on ``socket`` (`;` arguments chain commands)."""
    argv = ["tmux", "-u", "-L", socket, "-f", "/dev/null", *args]
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            encoding="utf-8",
            errors="replace",
            env=_client_env(),
            timeout=_CMD_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise InfraError("tmux is not installed (e.g. apt-get install tmux)") from exc
    except subprocess.TimeoutExpired as exc:
        raise InfraError(f"tmux did not answer within {_CMD_TIMEOUT_S:.0f}s: {args[0]}") from exc


def session_exists(name: str, socket: str = SOCKET) -> bool:
    return tmux_available() and tmux(socket, "has-session", "-t", "=" + name).returncode == 0


def kill_run_sessions(run_id: str, prefix: str = "conductor", socket: str = SOCKET) -> list[str]:
    """End every session of a run (agents first, hard): for resume, cancel and clean, since
    a pane whose agent was killed stays on the server (remain-on-exit). Returns their names."""
    if not tmux_available():
        return []
    head = _UNSAFE.sub("_", f"{prefix}-{run_id}-")  # how session_name() begins
    listed = tmux(socket, "list-sessions", "-F", "#{session_name}")
    names = [n for n in listed.stdout.split() if n.startswith(head)]
    for name in names:
        pane = _Pane(socket, name)
        pid = pane.pane_pid()
        if pid is not None:
            stop_tree(pid, 0.0)
        pane.kill()
    return names


# ---------------------------------------------------------------- one session


@dataclass(frozen=True)
class _Snap:
    """What the pane shows: every line of its history, trailing blanks dropped."""

    lines: list[str]
    dead: bool
    status: int | None
    digest: bytes


def _int(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


class _Pane:
    """The tmux session of one attempt: start it, read it, type into it, end it."""

    def __init__(self, socket: str, name: str) -> None:
        self.socket, self.name = socket, name
        self.target = f"={name}:"  # the session's active pane, matched by exact name
        self.env_file: Path | None = None

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return tmux(self.socket, *args)

    def start(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> int:
        """Start ``argv`` in a new session with exactly ``env``; the pane's pid."""
        fd, env_file = tempfile.mkstemp(prefix="conductor-env-", suffix=".json")  # mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(env), fh)
        self.env_file = Path(env_file)  # the launcher deletes it; kill() makes sure
        launch = [sys.executable, "-I", "-S", "-c", _LAUNCHER, env_file, *argv]
        # history-limit applies to panes created later, so it is set before new-session;
        # remain-on-exit globally, so even an agent that exits at once leaves its pane.
        res = self.tmux(
            "start-server", ";",
            "set-option", "-g", "history-limit", str(_HISTORY), ";",
            "set-option", "-g", "remain-on-exit", "on", ";",
            "new-session", "-d", "-s", self.name, "-x", str(_WIDTH), "-y", str(_HEIGHT),
            "-c", str(cwd), "-P", "-F", "#{pane_pid}", *launch,
        )  # fmt: skip
        pid = _int(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else None
        if res.returncode != 0 or pid is None:
            self.env_file.unlink(missing_ok=True)
            raise _StartFailed(f"tmux new-session failed: {res.stderr.strip() or res.stdout}")
        return pid

    def snapshot(self) -> _Snap | None:
        """The pane now; None once the session is gone. One client call, so the state and the
        content belong together."""
        res = self.tmux(
            "display-message", "-p", "-t", self.target,
            "#{pane_dead}|#{pane_dead_status}", ";",
            "capture-pane", "-p", "-J", "-S", "-", "-t", self.target,
        )  # fmt: skip
        if res.returncode != 0:
            return None
        head, _, body = res.stdout.partition("\n")
        dead, _, status = head.partition("|")
        lines = _trim([ln.rstrip() for ln in body.split("\n")])
        if dead == "1" and lines and _DEAD_NOTE.match(lines[-1]):
            lines = _trim(lines[:-1])
        digest = hashlib.blake2b("\n".join(lines).encode(), digest_size=16).digest()
        return _Snap(lines, dead == "1", _int(status), digest)

    def type_text(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.target, "-l", "--", text)

    def press_enter(self) -> None:
        self.tmux("send-keys", "-t", self.target, "Enter")

    def pane_pid(self) -> int | None:
        res = self.tmux("display-message", "-p", "-t", self.target, "#{pane_pid}")
        return _int(res.stdout) if res.returncode == 0 else None

    def kill(self) -> None:
        if self.env_file is not None:
            self.env_file.unlink(missing_ok=True)
        self.tmux("kill-session", "-t", "=" + self.name)


class _StartFailed(Exception):
    """tmux could not create the session."""


def _trim(lines: list[str]) -> list[str]:
    end = len(lines)
    while end and not lines[end - 1]:
        end -= 1
    return lines[:end]


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
                self.sink.emit(lines[-_HEIGHT:])
            return
        end = len(lines) if final else len(lines) - 1
        if end > self.count:
            self.sink.emit(lines[self.count : end])
            self.count, self.last = end, lines[end - 1]


# ---------------------------------------------------------------- the polling loop


_Outcome = tuple[Reason, int | None, str]  # reason, exit code, error


class _Drive:
    """Polls one pane: readiness, typing the prompt, completion, limits."""

    def __init__(self, ex: TmuxExecutor, pane: _Pane, log: _PaneLog, lim: Request) -> None:
        self.ex, self.pane, self.log, self.lim = ex, pane, log, lim
        self.t0 = time.monotonic()
        self.phase = "ready" if ex.prompt_text else "working"
        self.base = -1  # the line the prompt was typed on; completion shows below it
        self.enter_at = 0.0
        self.digest = b""
        self.changed = self.t0  # when the pane's content last changed
        self.next_tick = self.t0 + _TICK_S
        self.dead_at = 0.0  # when the pane was first seen dead

    def loop(self) -> _Outcome:
        while True:
            now = time.monotonic()
            snap = self.pane.snapshot()
            if snap is None:
                return "exited", None, "the tmux session was closed from outside"
            self.log.update(snap.lines)
            if snap.digest != self.digest:
                self.digest, self.changed = snap.digest, now
            outcome = self._finished(snap, now) or self._limit(now)
            if outcome is not None:
                return outcome
            self._advance(snap, now)
            if self.lim.on_tick is not None and now >= self.next_tick:
                self.lim.on_tick(now - self.t0, now - self.changed)
                self.next_tick = now + _TICK_S
            time.sleep(self.ex.poll_s)

    def _finished(self, snap: _Snap, now: float) -> _Outcome | None:
        ex = self.ex
        for line in reversed(snap.lines[self.base + 1 :]):
            if m := _MARKER.match(line):
                return "exited", int(m.group(1)), ""
        if snap.dead:  # without the exit line: the wrapper itself was killed
            self.dead_at = self.dead_at or now
            if snap.status is not None or now - self.dead_at >= _STATUS_WAIT_S:
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
        if lim.idle_s is not None and now - self.changed >= lim.idle_s:
            return "idle", None, f"no output for {human(lim.idle_s)}"
        return None

    def _advance(self, snap: _Snap, now: float) -> None:
        """Type the prompt once the agent is ready; press Enter ``send_delay_s`` later."""
        if self.phase == "ready" and self._ready(snap, now):
            self.base = self._prompt_at(snap) if self.ex.pattern else len(snap.lines) - 1
            self.pane.type_text(self.ex.prompt_text)
            self.phase, self.enter_at = "sent", now + self.ex.send_delay_s
        elif self.phase == "sent" and now >= self.enter_at:
            self.pane.press_enter()
            self.phase, self.changed = "working", now

    def _ready(self, snap: _Snap, now: float) -> bool:
        if self.ex.pattern is not None:
            return self._prompt_at(snap) >= 0
        return bool(snap.lines) and now - self.changed >= self.ex.settle_s

    def _prompt_at(self, snap: _Snap) -> int:
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
    ) -> None:
        if completion not in COMPLETIONS:
            raise ValueError(f"completion must be one of {', '.join(COMPLETIONS)}: {completion}")
        if completion == "prompt" and not prompt_pattern:
            raise ValueError("completion `prompt` needs a prompt_pattern")
        try:
            self.pattern = re.compile(prompt_pattern) if prompt_pattern else None
        except re.error as exc:
            raise ValueError(f"bad prompt_pattern {prompt_pattern!r}: {exc}") from exc
        # A newline would press Enter mid-prompt: an interactive prompt is one line.
        self.prompt_text = " ".join(prompt_text.split("\n")).strip()
        self.completion = completion
        self.idle_s, self.send_delay_s, self.settle_s = idle_s, send_delay_s, settle_s
        self.session_prefix, self.grace_s, self.poll_s = session_prefix, grace_s, poll_s
        self.socket = socket

    def run(self, request: Request) -> ProcessResult:
        """Run the request's command in a tmux session until it is done or a limit stops it.

        The session is named from ``CONDUCTOR_RUN_ID``/``CONDUCTOR_TASK_ID``/
        ``CONDUCTOR_ATTEMPT`` in its env (see :func:`session_name`); ``pid`` in the result
        and in ``on_start`` is the pane's process, the leader of its process group."""
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
            result = self._run(request, _Pane(self.socket, name), sink)
            sink.note(footer(result))
            return result
        finally:
            sink.close()

    def _run(self, req: Request, pane: _Pane, sink: Sink) -> ProcessResult:
        if req.stopped_before_start():
            return CANCELLED_BEFORE_START
        t0 = time.monotonic()
        pid: int | None = None
        error = _precheck(req.argv, req.cwd, req.env)
        if error is None:
            self._reap_stale(pane, sink)
            try:
                pid = pane.start(["/bin/sh", "-c", _WRAPPER, "sh", *req.argv], req.cwd, req.env)
            except _StartFailed as exc:
                error = str(exc)
        if pid is None:
            return ProcessResult(None, "start_failed", time.monotonic() - t0, None, error or "")
        log = _PaneLog(sink)
        outcome: _Outcome | None = None
        grace = self.grace_s if req.limits.grace_s is None else req.limits.grace_s
        try:
            if req.on_start is not None:
                req.on_start(pid, process_start_time(pid) or time.time())
            outcome = _Drive(self, pane, log, req).loop()
        finally:
            hard = outcome is None or (req.kill_now is not None and req.kill_now.is_set())
            self._finish(pane, pid, log, req.kill_now, 0.0 if hard else grace)
        reason, code, error = outcome
        return ProcessResult(code, reason, time.monotonic() - t0, pid, error or "")

    def _finish(
        self, pane: _Pane, pgid: int, log: _PaneLog, kill_now: threading.Event | None, grace: float
    ) -> None:
        """Stop the agent's process group, log the pane's last lines, remove the session."""
        try:
            stop_tree(pgid, grace, kill_now)
            final = pane.snapshot()
            if final is not None:
                log.update(final.lines, final=True)
        finally:
            pane.kill()

    def _reap_stale(self, pane: _Pane, sink: Sink) -> None:
        """A session of this attempt left by a conductor that died: its agent is an orphan."""
        pid = pane.pane_pid()
        if pid is None:
            return
        sink.note(f"# conductor: removing a stale tmux session {pane.name} (pane pid {pid})")
        stop_tree(pid, 0.0)
        pane.kill()


def become_attached(argv: Sequence[str]) -> NoReturn:
    """Replace this process with the tmux client ``argv`` (from :func:`attach_argv`).

    tmux refuses to nest while $TMUX is set, but the session is on conductor's own server."""
    os.execvpe(argv[0], list(argv), _client_env())
