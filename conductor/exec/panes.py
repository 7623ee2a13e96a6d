"""conductor's tmux server: session names, the tmux client, and one session's pane.

Sessions live on conductor's own server (``tmux -L conductor``) started without a config file
(``-f /dev/null``): the user's tmux server and settings are never touched, and panes behave
the same everywhere. ``remain-on-exit`` keeps a dead agent's pane, so its last lines are read.
The executor that drives an agent through a pane is :mod:`conductor.exec.tmux`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from conductor.errors import InfraError
from conductor.exec.procs import stop_tree

SOCKET = "conductor"
EXIT_MARKER = "__CONDUCTOR_EXIT="

EXIT_LINE = re.compile(r"^__CONDUCTOR_EXIT=(\d+)$")
_DEAD_NOTE = re.compile(r"^Pane is dead \(")  # tmux's remain-on-exit banner, not the agent's
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")  # `.` and `:` separate window and pane in a target
_WIDTH, HEIGHT = 200, 50
_HISTORY = 100_000  # lines of scrollback, so a long answer is still there for the log
_CMD_TIMEOUT_S = 15.0

STATUS_WAIT_S = 0.5  # a dead pane without the exit line: how long to wait for tmux's status
WRAPPER = f'"$@"; echo "{EXIT_MARKER}$?"'

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


def client_env() -> dict[str, str]:
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
            env=client_env(),
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
        pane = Pane(socket, name)
        pid = pane.pane_pid()
        if pid is not None:
            stop_tree(pid, 0.0)
        pane.kill()
    return names


# ---------------------------------------------------------------- one session


@dataclass(frozen=True)
class Snap:
    """What the pane shows: every line of its history, trailing blanks dropped."""

    lines: list[str]
    dead: bool
    status: int | None
    digest: bytes


def _int(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


class Pane:
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
            "new-session", "-d", "-s", self.name, "-x", str(_WIDTH), "-y", str(HEIGHT),
            "-c", str(cwd), "-P", "-F", "#{pane_pid}", *launch,
        )  # fmt: skip
        pid = _int(res.stdout.strip().splitlines()[-1]) if res.stdout.strip() else None
        if res.returncode != 0 or pid is None:
            self.env_file.unlink(missing_ok=True)
            raise StartFailed(f"tmux new-session failed: {res.stderr.strip() or res.stdout}")
        return pid

    def snapshot(self) -> Snap | None:
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
        return Snap(lines, dead == "1", _int(status), digest)

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


class StartFailed(Exception):
    """tmux could not create the session."""


def _trim(lines: list[str]) -> list[str]:
    end = len(lines)
    while end and not lines[end - 1]:
        end -= 1
    return lines[:end]


def become_attached(argv: Sequence[str]) -> NoReturn:
    """Replace this process with the tmux client ``argv`` (from :func:`attach_argv`).

    tmux refuses to nest while $TMUX is set, but the session is on conductor's own server."""
    os.execvpe(argv[0], list(argv), client_env())
