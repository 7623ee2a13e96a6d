"""`conductor progress` from inside an attempt, sandboxed or not.

Two things stand between an agent and `conductor progress` (issue 11): its tools may run in
a login shell (Codex runs each command with `bash -lc`), whose profile resets PATH, and its
sandbox may make the state directory read-only. So every command of an attempt is given

* ``CONDUCTOR_BIN``: an absolute path that runs this conductor (:func:`conductor_bin`),
  so ``"$CONDUCTOR_BIN" progress 50 "tests pass"`` works whatever PATH says;
* ``CONDUCTOR_PROGRESS_DIR``: the attempt's spool in its own worktree
  (``conductor.state.spool``), where `conductor progress` leaves its reports instead of
  writing the store. :class:`ProgressSpool` takes them about once a second (on the
  executor's tick) and once more when the command ends, and records them masked.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from conductor.state.layout import Layout
from conductor.state.spool import SPOOL_VAR, spool_dir, take_reports

if TYPE_CHECKING:
    from conductor.run.context import RunContext

BIN_VAR = "CONDUCTOR_BIN"


def _runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def conductor_bin(state_dir: Path) -> str:
    """An absolute path that runs this conductor: the console script beside this
    interpreter (a virtualenv, pipx), else the script this process was started as, else
    a two-line wrapper in the state directory that runs ``python -m conductor`` with this
    interpreter and this copy of the package (a source checkout)."""
    beside = Path(sys.executable).parent / "conductor"
    if _runnable(beside):
        return str(beside.absolute())
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is not None and started.name == "conductor" and _runnable(started):
        return str(started.resolve())
    return _wrapper(Layout(state_dir).conductor_wrapper)


def _wrapper(path: Path) -> str:
    import conductor

    home = Path(conductor.__file__).resolve().parent.parent
    text = (
        "#!/bin/sh\n# written by conductor: runs the conductor that started this task\n"
        f"PYTHONPATH={shlex.quote(str(home))}${{PYTHONPATH:+:$PYTHONPATH}} "
        f'exec {shlex.quote(sys.executable)} -m conductor "$@"\n'
    )
    try:
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(0o755)
            os.replace(tmp, path)
    except OSError:  # no wrapper: a command line is the best left (unquoted use works)
        return shlex.join([sys.executable, "-m", "conductor"])
    return str(path.absolute())


class ProgressSpool:
    """The spool of one attempt: the environment its commands get, and the reports taken
    from it, recorded like `conductor progress` writing the store would (masked first)."""

    def __init__(self, ctx: RunContext, task_id: str, worktree: Path) -> None:
        self.ctx, self.task_id, self.worktree = ctx, task_id, worktree

    def env(self) -> dict[str, str]:
        return {
            BIN_VAR: conductor_bin(self.ctx.ws.state_dir),
            SPOOL_VAR: str(spool_dir(self.worktree)),
        }

    def take(self, final: bool = False) -> None:
        """Record the reports waiting in the spool; ``final`` when the command is over."""
        ctx = self.ctx
        for percent, message in take_reports(self.worktree, final):
            step = ctx.secrets.redact(message) if message is not None else None
            ctx.store.update_task(ctx.run_id, self.task_id, progress=percent, step=step)
            ctx.emit("task_progress", self.task_id, percent=percent, message=message)

    def ticking(self, tick: Callable[[float, float], None]) -> Callable[[float, float], None]:
        """``tick`` (the executor's once-a-second callback), taking the spool's reports too."""

        def both(elapsed: float, idle: float) -> None:
            tick(elapsed, idle)
            self.take()

        return both
