"""Reading the tree an index says it holds, from the index file itself (no git process).

git keeps a *cache tree* in the index (the ``TREE`` extension): for each directory, the
tree object its entries make, dropped (``-1`` entries) the moment any entry under it is
added, changed or removed. A refresh that only records new file times (``git status``)
keeps it. So an index whose root cache-tree entry is valid holds exactly that tree: when
it names the same tree before an attempt's agent ran and when its work is committed, the
agent staged nothing, which is what lets ``git add --verbose`` tell the whole change.

Format: Documentation/gitformat-index.txt. Anything this reader does not know (split
index, unknown version, a short or odd file) gives None: callers then ask git.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_HEADER = 12  # "DIRC", version, entry count
_STAT = 40  # ctime, mtime, dev, ino, mode, uid, gid, size: ten 32-bit fields
_EXTENDED = 0x4000  # an entry flag (version 3+): two more flag bytes follow
_NAME_MASK = 0x0FFF
_TRAILER = 32  # read this much of the end: it holds the checksum (20 or 32 bytes)
# Indexes larger than this (some 3,000 files) are not parsed: walking their entries in
# Python costs about what the one git process it would save does (2.4 ms at 8,000 files).
PARSE_LIMIT = 256 * 1024


@dataclass(frozen=True)
class IndexMark:
    """An attempt's index as its worktree was made: the file's own checksum (None under
    ``index.skipHash``, which leaves it zero) and, for a small one, its cache tree."""

    checksum: bytes | None
    tree: str | None


def mark(index: Path, hash_len: int) -> IndexMark | None:
    """``index`` now, to compare with later (``unchanged``); None when it cannot be read."""
    try:
        data = index.read_bytes() if index.stat().st_size <= PARSE_LIMIT else _tail(index)
    except OSError:
        return None
    tree = cache_tree(data, hash_len) if len(data) > _TRAILER else None
    return IndexMark(_checksum(data), tree)


def unchanged(before: IndexMark, index: Path, hash_len: int) -> bool:
    """Whether the index at ``index`` still holds what it held at ``before``: the same
    bytes (its checksum), or, for a small one, the same valid cache tree (a refresh by
    `git status` rewrites the file but keeps the tree)."""
    try:
        size = index.stat().st_size
        data = index.read_bytes() if size <= PARSE_LIMIT else _tail(index)
    except OSError:
        return False
    if before.checksum is not None and _checksum(data) == before.checksum:
        return True
    small = size <= PARSE_LIMIT and before.tree is not None
    return small and cache_tree(data, hash_len) == before.tree


def _tail(index: Path) -> bytes:
    with index.open("rb") as fh:
        fh.seek(-_TRAILER, 2)
        return fh.read()


def _checksum(data: bytes) -> bytes | None:
    """The last bytes of the file, which end with its checksum; None when that is zero."""
    tail = data[-_TRAILER:]
    return None if len(tail) < _TRAILER or not any(tail[-20:]) else tail


def cache_tree(data: bytes, hash_len: int) -> str | None:
    """The hex id of the tree the index file ``data`` holds, when its root cache-tree
    entry is valid; None when it is not, or the file cannot be read with certainty.
    ``hash_len`` is the object id's size in bytes: 20 (SHA-1) or 32 (SHA-256)."""
    if len(data) < _HEADER + hash_len or data[:4] != b"DIRC":
        return None
    version = int.from_bytes(data[4:8], "big")
    count = int.from_bytes(data[8:12], "big")
    end = len(data) - hash_len  # the file's own checksum closes it
    pos = _skip_entries(data, version, count, hash_len, end)
    while pos is not None and pos + 8 <= end:
        sig, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "big")
        body = pos + 8
        if body + size > end:
            return None
        if sig == b"link":  # a split index: the entries live in another file too
            return None
        if sig == b"TREE":
            return _root_tree(data[body : body + size], hash_len)
        pos = body + size
    return None


def _skip_entries(data: bytes, version: int, count: int, hash_len: int, end: int) -> int | None:
    """Offset just past the last entry (where the extensions begin), or None."""
    if version not in (2, 3, 4):
        return None
    fixed = _STAT + hash_len + 2  # then the 16-bit flags
    pos = _HEADER
    for _ in range(count):  # one index lookup per byte, no slices: the hot loop
        if pos + fixed > end:
            return None
        flags = data[pos + fixed - 2] << 8 | data[pos + fixed - 1]
        name = pos + fixed + (2 if flags & _EXTENDED and version >= 3 else 0)
        if version == 4:  # a varint (bytes of the previous name to drop), then NUL-ended
            while name < end and data[name] & 0x80:
                name += 1
            nul = data.find(b"\0", name + 1, end)
            if nul < 0:
                return None
            pos = nul + 1
            continue
        length = flags & _NAME_MASK
        if length == _NAME_MASK:  # a name of 4095 bytes or more: find its end
            length = data.find(b"\0", name, end) - name
            if length < 0:
                return None
        # NUL-padded to a multiple of eight bytes, with at least one NUL
        pos += (name - pos + length + 8) & ~7
    return pos if pos <= end else None


def _root_tree(ext: bytes, hash_len: int) -> str | None:
    """The root entry of a ``TREE`` extension: ``NUL count SP subtrees LF oid``."""
    nl = ext.find(b"\n")
    if not ext.startswith(b"\0") or nl < 0:
        return None
    fields = ext[1:nl].split(b" ")
    if len(fields) != 2 or fields[0].startswith(b"-") or not fields[0].isdigit():
        return None  # -1: invalidated since git last wrote the tree
    oid = ext[nl + 1 : nl + 1 + hash_len]
    return oid.hex() if len(oid) == hash_len else None
