"""What a failing SQLite call means for the user: one `StoreError` with where and what to do.

The store calls `translate` wherever sqlite is called, so no caller ever sees a raw
`sqlite3.Error` (a traceback) for a corrupt, full, read-only or locked `state.db`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conductor.errors import StoreError

# (words in SQLite's message, kind); SQLite's messages are stable across versions
_KINDS = (
    ("not a database", "corrupt"),
    ("malformed", "corrupt"),
    ("disk is full", "full"),
    ("readonly", "readonly"),
    ("read-only", "readonly"),
    ("unable to open", "readonly"),
    ("locked", "locked"),
    ("busy", "locked"),
)


def kind_of(exc: BaseException) -> str:
    text = str(exc).lower()
    if isinstance(exc, OSError):
        return "full" if "no space" in text else "readonly"
    return next((kind for words, kind in _KINDS if words in text), "other")


def translate(path: Path, exc: sqlite3.Error | OSError) -> StoreError:
    """The `StoreError` for ``exc`` raised while using the store at ``path``."""
    kind = kind_of(exc)
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    where = str(path)
    if kind == "corrupt":
        return StoreError(
            f"{where} is not a conductor state database ({why})",
            "move it aside and run again; `conductor runs` history will start empty",
            where, kind,
        )  # fmt: skip
    if kind == "full":
        return StoreError(
            f"cannot write {where} ({why})",
            "free space on that disk, then run again; an interrupted run continues with "
            "`conductor resume RUN`",
            where, kind,
        )  # fmt: skip
    if kind == "readonly":
        return StoreError(
            f"cannot write {where} ({why})",
            f"make {path.parent} writable (it holds conductor's state), then run again",
            where, kind,
        )  # fmt: skip
    if kind == "locked":
        return StoreError(
            f"{where} is locked by another process ({why})",
            f"wait for it to let go, or find it with `fuser {where}`, then run again",
            where, kind,
        )  # fmt: skip
    return StoreError(f"{where}: {why}", "check that file and its directory", where, kind)
