"""Starting a process that outlives the command that started it: the detached runner.

The one process conductor starts on purpose to live on after its parent exits (`run
--detach`, `resume --detach`). It leads its own session, so a Ctrl-C or a closed terminal
in the user's shell never reaches it, and it writes into its own log file.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def spawn_detached(
    argv: Sequence[str], cwd: Path, log_path: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start ``argv`` in a new session with stdout and stderr appended to ``log_path``;
    return its pid without waiting for it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc.pid
