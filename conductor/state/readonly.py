"""A store opened for reading only: what the web page and `conductor metrics` look through.

SQLite itself refuses every write on a ``mode=ro`` connection, so a reader that serves a
page for hours can never take the write lock a runner needs (WAL lets it read while the
runner writes). It is a ``Store`` in every other way: the same typed read methods, so
the status document, liveness and the followers work on it unchanged.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from conductor.errors import StoreError, UserError
from conductor.state.records import SCHEMA_VERSION
from conductor.state.store import BUSY_S, Store
from conductor.state.storefaults import translate


def _connect(path: Path) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        db = sqlite3.connect(
            uri, uri=True, timeout=BUSY_S, isolation_level=None, check_same_thread=False
        )
    except (sqlite3.Error, OSError) as exc:
        raise translate(path, exc) from None
    db.row_factory = sqlite3.Row
    return db


def _version(db: sqlite3.Connection, path: Path) -> int:
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        db.close()
        raise translate(path, exc) from None


class ReadOnlyStore(Store):
    """``Store``'s readers over a connection SQLite opened read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self.on_locked = None
        self._db = _connect(path)
        version = _version(self._db, path)
        if version == 0:
            self._db.close()
            raise UserError(f"{path} holds no conductor runs",
                            hint="start one with `conductor run WORKFLOW`")  # fmt: skip
        if version != SCHEMA_VERSION:
            self._db.close()
            raise StoreError(
                f"{path} is store version {version}, this conductor reads {SCHEMA_VERSION}",
                "upgrade conductor" if version > SCHEMA_VERSION else "run `conductor runs` "
                "once to upgrade it in place", str(path), "other",
            )  # fmt: skip

    def select(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of a reader's own query (sums for /metrics): SQLite refuses any write."""
        return self._all(sql, args)


def open_readonly(db: Path) -> ReadOnlyStore:
    """The store at ``db`` for reading. An older store is upgraded first, by a normal
    ``Store`` that is closed again before any reading starts (its one write)."""
    if not db.is_file():
        raise UserError(f"no conductor store at {db}",
                        hint="start a run with `conductor run WORKFLOW`")  # fmt: skip
    probe = _connect(db)
    version = _version(probe, db)
    probe.close()
    if 0 < version < SCHEMA_VERSION:
        Store(db).close()
    return ReadOnlyStore(db)
