"""The progress spool: how `conductor progress` reaches a run without writing its store.

An agent's sandbox may leave the state directory read-only (Codex's workspace-write), so
`conductor progress` inside an attempt does not write `state.db`: it drops one small JSON
file per report into the attempt's spool directory, ``<worktree>/.conductor/progress/``.
The worktree is the one place every agent can write and the runner can read, and
``.conductor/`` is in the repository's ``info/exclude``, so the spool never becomes part of
the agent's commit. The runner takes the reports about once a second, masks them like
every other event and records them (see ``conductor.run.progress``); it removes each file as
it takes it, so a secret in a message stays on disk only until then.

Each report is written to a temporary name and renamed, so the reader never sees half of
one; the reader opens the directory and the files without following symlinks (an agent
must not be able to point the runner at files outside its worktree).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

SPOOL_VAR = "CONDUCTOR_PROGRESS_DIR"
SPOOL = (".conductor", "progress")  # under the attempt's worktree
_SUFFIX = ".json"
_MAX_BYTES = 65536  # a report is a percent and a line of text: anything larger is not one
_MAX_FILES = 1000  # taken per call: an agent flooding the spool cannot stall the runner

Report = tuple[float, str | None]  # (percent, message)


def spool_dir(worktree: Path) -> Path:
    return Path(worktree).joinpath(*SPOOL)


def write_report(directory: Path, percent: float, message: str | None) -> None:
    """Leave one report in ``directory`` (created if need be). Raises OSError."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{os.getpid()}-{os.urandom(3).hex()}"
    tmp = directory / f".{name}.tmp"
    tmp.write_text(json.dumps({"percent": percent, "message": message}), encoding="utf-8")
    os.replace(tmp, directory / f"{name}{_SUFFIX}")


def _open_spool(worktree: Path) -> int | None:
    """A descriptor of the spool directory, None when there is none (the usual case)."""
    try:
        fd = os.open(worktree, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    for part in SPOOL:
        try:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except OSError:  # missing, a file, or a symlink: no spool of ours
            os.close(fd)
            return None
        os.close(fd)
        fd = nxt
    return fd


def _read(name: str, dir_fd: int) -> Report | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read(_MAX_BYTES + 1)
        doc = json.loads(raw) if len(raw) <= _MAX_BYTES else None
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    percent, message = doc.get("percent"), doc.get("message")
    if isinstance(percent, bool) or not isinstance(percent, (int, float)):
        return None
    if not 0 <= percent <= 100 or not (message is None or isinstance(message, str)):
        return None
    return float(percent), message


def take_reports(worktree: Path, final: bool = False) -> list[Report]:
    """The reports waiting in ``worktree``'s spool, oldest first, each removed as it is
    read (malformed ones are removed and skipped). ``final``: the attempt is over, so
    half-written files are removed too and the spool directory with them."""
    fd = _open_spool(worktree)
    if fd is None:
        return []
    reports: list[Report] = []
    try:
        names = sorted(os.listdir(fd))
        for name in [n for n in names if n.endswith(_SUFFIX)][:_MAX_FILES]:
            report = _read(name, fd)
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=fd)
            if report is not None:
                reports.append(report)
        for name in names if final else []:  # half-written, or past the cap
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    if final:
        _remove_empty(worktree)
    return reports


def _remove_empty(worktree: Path) -> None:
    """rmdir the spool and its `.conductor/` once empty (a kept worktree stays tidy)."""
    with contextlib.suppress(OSError):
        os.rmdir(spool_dir(worktree))
    with contextlib.suppress(OSError):
        os.rmdir(Path(worktree) / SPOOL[0])
