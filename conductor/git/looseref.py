"""Moving a branch as git's files backend does, without starting git: the merge's last step.

Every task's merge ends in a compare-and-swap of the integration branch, under the merge
lock that serialises all merges of a run, so one git process fewer there shortens the
one queue every task waits in. The protocol is git's own (refs/files-backend.c): take
``<ref>.lock`` with O_EXCL, check the ref still holds the old value, write the new one
into the lock, append the reflog entry, then rename the lock over the ref. Whatever this
does not cover exactly is left to ``git update-ref`` (see :func:`swap`).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from conductor.git.smallfiles import read_small

_LOCK = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


def reflog_line(old: str, new: str, who: str, message: str, when: float) -> str:
    """One reflog entry as git writes it: the message's whitespace runs made one space."""
    zone = time.strftime("%z", time.localtime(when))
    return f"{old} {new} {who} {int(when)} {zone}\t{' '.join(message.split())}\n"


def swap(common: Path, ref: str, new: str, old: str, who: str, message: str) -> bool | None:
    """Move ``ref`` from ``old`` to ``new``: True when moved, False when it no longer holds
    ``old`` (the swap lost). None leaves it to git: refs that are not files (reftable), a
    ref that is not a loose file with a reflog (packed, or never logged), a HEAD that
    names it (git would log HEAD too), or a lock someone else holds."""
    path, log = common / ref, common / "logs" / ref
    if (common / "reftable").exists() or not log.is_file():
        return None
    if (read_small(common / "HEAD") or "").strip() == f"ref: {ref}":
        return None
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, _LOCK, 0o666)
    except OSError:  # held by another writer, or the directory is not there
        return None
    try:
        current = (read_small(path) or "").strip()
        if current != old:
            return False if current else None  # a packed-only ref: git's to move
        os.write(fd, f"{new}\n".encode())
        _append(log, reflog_line(old, new, who, message, time.time()))
        os.rename(lock, path)
        return True
    except OSError:  # a full disk, say: git tries again and says what is wrong
        return None
    finally:
        os.close(fd)
        if os.path.lexists(lock):
            os.unlink(lock)


def put(common: Path, ref: str, sha: str) -> bool:
    """Point ``ref`` (one of conductor's own, unlogged: a pre-snapshot ref) at ``sha`` the
    same way; False leaves it to git: refs that are not files, a lock someone else holds
    (never removed here), a directory that cannot be made."""
    path = common / ref
    lock = path.with_name(path.name + ".lock")
    if (common / "reftable").exists():
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, _LOCK, 0o644)
    except OSError:
        return False
    try:
        os.write(fd, f"{sha}\n".encode())
        os.rename(lock, path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        if os.path.lexists(lock):  # ours: it was made above
            os.unlink(lock)


def _append(log: Path, line: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.write(fd, line.encode("utf-8"))  # one write: appended whole
    finally:
        os.close(fd)


def delete(common: Path, names: list[str], stop_at: str) -> list[str]:
    """Delete loose refs and their reflogs, and the directories they leave empty up to
    ``stop_at`` (as git does); return the names left to git: packed ones, locked ones,
    and all of them where refs are not files. For refs no process is moving (a finished
    run's own): git's transaction would take a lock file for each first, and on this
    project's file system each new inode costs (see smallfiles.py)."""
    if (common / "reftable").exists():
        return list(names)
    lines = (read_small(common / "packed-refs") or "").splitlines()
    packed = {line.partition(" ")[2] for line in lines if line[:1] not in ("#", "^")}
    left = []
    for name in names:
        path = common / name
        if name in packed or os.path.lexists(f"{path}.lock") or not path.is_file():
            left.append(name)
            continue
        os.unlink(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(common / "logs" / name)
        for base in (common, common / "logs"):
            _prune_empty((base / name).parent, base / stop_at)
    return left


def _prune_empty(directory: Path, stop: Path) -> None:
    while directory != stop and stop in directory.parents:
        try:
            directory.rmdir()
        except OSError:  # not empty, or gone
            return
        directory = directory.parent
