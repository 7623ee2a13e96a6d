"""What a commit changed, told by the ``git add --verbose`` and ``git commit`` that made it.

``diff-tree --numstat`` after the commit costs a git process per attempt; the same facts
are in the output of the two calls made anyway, but only under conditions that make them
exact (see ``Workspace.commit_work``): the add saw the whole change (the index held the
start tree), the commit's parent is the start, and the add's paths agree in number with
the commit's summary line. Anything unexpected in either output gives None, and the caller
asks ``diff-tree`` as before.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

# `git commit`'s summary against its parent (LC_ALL=C); absent when nothing changed.
_STAT = re.compile(
    r" (\d+) files? changed(?:, (\d+) insertions?\(\+\))?(?:, (\d+) deletions?\(-\))?"
)
# What `git add --verbose` prints per index entry it adds, replaces or removes. The path is
# printed raw (never quoted): a name holding a newline breaks into extra lines, which the
# caller's count check catches.
_VERBS = ("add '", "remove '")


@dataclass(frozen=True)
class Committed:
    """A commit of an attempt's work and what it changed since the attempt's start, as
    ``Workspace.diff_summary`` gives it (paths in git's order, binary files 0/0)."""

    sha: str
    paths: list[str]
    insertions: int
    deletions: int
    folded: bool = False  # told by the add and commit output: no diff-tree was run


def fold(added: str, said: str) -> tuple[list[str], int, int] | None:
    """(paths in git's order, insertions, deletions) from what ``git add --verbose`` and
    ``git commit`` printed, when the add's paths are as many as the commit's summary line
    counts; None otherwise. A rename (which that summary always looks for, whatever
    ``diff.renames`` says) counts one file for two paths: None, as it must be."""
    paths = added_paths(added)
    stat = commit_stat(said) if paths is not None else None
    if paths is None or stat is None or stat[0] != len(paths):
        return None
    return in_git_order(paths), stat[1], stat[2]


def added_paths(out: str) -> list[str] | None:
    """The distinct paths of ``git add --verbose`` output, or None when a line is not one
    of its two forms, a path repeats, or one ends in a slash (an embedded repository,
    which the index names without it)."""
    if not out:
        return []
    paths = []
    for line in out.split("\n"):
        verb = next((v for v in _VERBS if line.startswith(v)), None)
        if verb is None or len(line) < len(verb) + 2 or line[-1:] != "'" or line[-2:] == "/'":
            return None
        paths.append(line[len(verb) : -1])
    return paths if len(set(paths)) == len(paths) else None


def commit_stat(out: str) -> tuple[int, int, int] | None:
    """(files, insertions, deletions) from ``git commit``'s output; (0, 0, 0) when it
    printed no summary line (an empty commit), None when its second line is another."""
    lines = out.split("\n")
    if len(lines) == 1:
        return 0, 0, 0
    found = _STAT.fullmatch(lines[1])
    if found is None:
        return None
    return int(found[1]), int(found[2] or 0), int(found[3] or 0)


def loose_parents(common_dir: Path, sha: str) -> list[str] | None:
    """A commit's parents read from its loose object file (a commit just made is loose:
    conductor turns automatic maintenance off); None when it is not there or not a commit."""
    path = common_dir / "objects" / sha[:2] / sha[2:]
    try:
        raw = zlib.decompress(path.read_bytes())
    except (OSError, zlib.error):
        return None
    header, _, body = raw.partition(b"\0")
    if not header.startswith(b"commit "):
        return None
    parents = []
    for line in body.split(b"\n"):
        if not line:  # the headers end at the first blank line
            break
        if line.startswith(b"parent "):
            parents.append(line[len(b"parent ") :].decode("ascii", "replace"))
    return parents


def in_git_order(paths: list[str]) -> list[str]:
    """Paths as ``diff-tree`` lists them: by their bytes (git's index and tree order)."""
    return sorted(paths, key=lambda p: p.encode("utf-8", "surrogateescape"))
