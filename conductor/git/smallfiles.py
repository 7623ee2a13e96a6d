"""The small files git keeps (HEAD, gitdir, loose refs, `locked`), read and written by hand.

An attempt reads and writes a few dozen of them (pinning, the ref watch, the pool), from
one of the runner's threads. ``open()`` adds an fstat, an ioctl and an lseek to every
file, and each system call hands the GIL to another thread and back, so these go
through ``os.open``/``os.read``/``os.write`` instead. And a file is rewritten in place
(:func:`rewrite`) rather than replaced: every new inode costs, and on ext4 without a
journal (this project's CI machines) each one is found by walking past the inodes freed
in the last seconds, which a run frees by the thousand. ``O_NONBLOCK``: a FIFO an agent
put where a file should be reads as empty instead of hanging the runner (opening a FIFO
for reading waits for a writer); it changes nothing for regular files.
"""

from __future__ import annotations

import os
from pathlib import Path

_CHUNK = 65536
_READ = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK


def read_bytes(path: Path | str) -> bytes | None:
    """The file's bytes; None when missing, a directory, or otherwise unreadable. Also how
    the exec room reads /proc (it starts no process, like git/env.py)."""
    try:
        fd = os.open(path, _READ)
    except OSError:  # gone, or another user's
        return None
    parts = []
    try:
        while chunk := os.read(fd, _CHUNK):
            parts.append(chunk)
            if len(chunk) < _CHUNK:  # a regular file, or /proc, gives all it has at once
                break
    except OSError:  # a directory (EISDIR), an empty FIFO (EAGAIN)
        if not parts:
            return None
    finally:
        os.close(fd)
    return b"".join(parts)


def read_small(path: Path | str) -> str | None:
    """The file's text (UTF-8, bad bytes replaced), as :func:`read_bytes` reads it."""
    data = read_bytes(path)
    return None if data is None else data.decode("utf-8", "replace")


def rewrite(path: Path | str, text: str) -> None:
    """Give ``path`` the contents ``text``, in place when it exists: the new text over the
    old, then cut to length. No new inode, and never an empty file: a kill -9 between the
    two calls leaves the new text followed by the old one's tail, which git ignores after
    a sha (HEAD, ORIG_HEAD) and the pool repairs in a `gitdir` it names."""
    data = text.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    try:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], done)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
