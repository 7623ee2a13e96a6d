"""SQLite state: runs, tasks, attempts, events — the single source of truth.

Every transition is committed before anything relies on it, so a runner killed at
any moment leaves a store that `resume` can trust. One connection per Store, shared
by the engine's worker threads behind a lock (SQLite serialises writers anyway).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

from conductor.errors import StoreError
from conductor.state.layout import Layout
from conductor.state.records import (
    ATTEMPT_COLUMNS,
    MIGRATIONS,
    RUN_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    TASK_COLUMNS,
    AttemptRow,
    EventRow,
    RunRow,
    Spend,
    TaskRow,
)
from conductor.state.storefaults import translate

Row = dict[str, Any]  # a row as sqlite3 hands it over, before it is typed
_R = TypeVar("_R")
# Told how long a write has waited for another process's lock; True: keep waiting.
OnLocked = Callable[[StoreError, float], bool]
BUSY_S = 30.0  # SQLite's own wait for a lock before a write gives up (or asks OnLocked)


def _first(rows: list[_R]) -> _R | None:
    return rows[0] if rows else None


def _assignments(fields: Mapping[str, Any], allowed: tuple[str, ...]) -> tuple[str, list[Any]]:
    unknown = set(fields) - set(allowed)
    if unknown:  # column names are interpolated below: only ever our own literals
        raise ValueError(f"unknown columns: {sorted(unknown)}")
    return ", ".join(f"{k} = ?" for k in fields), list(fields.values())


class Store:
    """A handle on `.conductor/state.db`. Use as a context manager or call close()."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self.on_locked: OnLocked | None = None  # None: a lock past BUSY_S is an error
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(path), timeout=BUSY_S, isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, OSError) as exc:
            raise translate(path, exc) from None
        try:
            self._open()
        except (sqlite3.Error, OSError) as exc:
            self._db.close()
            raise translate(path, exc) from None
        except StoreError:
            self._db.close()
            raise

    def _open(self) -> None:
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_S * 1000)}")
        # In WAL mode NORMAL still survives kill -9 (only an OS crash can lose the last
        # commits, and resume re-checks git); FULL costs an fsync per transition.
        self._db.execute("PRAGMA synchronous = NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            self._create()
        elif version < SCHEMA_VERSION:
            self._migrate(version)
        elif version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer conductor (store version {version})",
                "upgrade conductor, or move the file aside to start a fresh history",
                str(self.path), "corrupt",
            )  # fmt: skip

    def _create(self) -> None:
        # WAL lets `status` read while the runner writes; the schema goes in one
        # transaction so a half-created database is never observed.
        self._db.execute("PRAGMA journal_mode = WAL")
        with self.tx():
            self._db.executescript("BEGIN;" + SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")

    def _migrate(self, version: int) -> None:
        # One transaction: a runner killed mid-upgrade leaves the old version, intact.
        with self.tx() as db:
            # another process may have upgraded it between our read and our write lock
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for sql in MIGRATIONS.get(step, ()):
                    db.execute(sql)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def wait_when_locked(self, on_locked: OnLocked, every_s: float) -> None:
        """Keep waiting for another process's lock instead of failing: SQLite waits
        ``every_s`` at a time, and ``on_locked`` (which may warn) says whether to go on."""
        with self._lock:
            self.on_locked = on_locked
            self._db.execute(f"PRAGMA busy_timeout = {int(every_s * 1000)}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction; nested use joins the outer one. SQLite's errors leave as
        `StoreError`, rolled back."""
        with self._lock:
            if self._db.in_transaction:
                yield self._db
                return
            self._begin()
            try:
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise translate(self.path, exc) from None
            except BaseException:
                self._rollback()
                raise

    def _begin(self) -> None:
        """BEGIN IMMEDIATE takes the write lock up front: once it is ours, nothing in
        the transaction waits for another process, so a lock is only waited on here."""
        since = time.monotonic()
        while True:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.Error as exc:
                fault = translate(self.path, exc)
                waited = time.monotonic() - since
                if fault.kind != "locked" or self.on_locked is None:
                    raise fault from None
                if not self.on_locked(fault, waited):
                    raise fault from None

    def _rollback(self) -> None:
        # SQLite may have rolled back by itself (a full disk does): nothing left to undo
        if self._db.in_transaction:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
        with self._lock:
            try:
                return [dict(r) for r in self._db.execute(sql, args).fetchall()]
            except sqlite3.Error as exc:
                raise translate(self.path, exc) from None

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Row | None:
        rows = self._all(sql, args)
        return rows[0] if rows else None

    # The typed views: the SQL selects whole rows of one table, so the dicts are records.
    def _runs(self, sql: str, args: tuple[Any, ...] = ()) -> list[RunRow]:
        return cast("list[RunRow]", self._all(sql, args))

    def _tasks(self, sql: str, args: tuple[Any, ...] = ()) -> list[TaskRow]:
        return cast("list[TaskRow]", self._all(sql, args))

    def _attempts(self, sql: str, args: tuple[Any, ...] = ()) -> list[AttemptRow]:
        return cast("list[AttemptRow]", self._all(sql, args))

    # -- runs ---------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        workflow: str,
        name: str,
        branch: str,
        options: Mapping[str, Any],
        tasks: list[tuple[str, str | None, str, str, str]],
    ) -> None:
        """Insert a run and its tasks as (id, group, agent, state, spec_hash) in one go."""
        now = time.time()
        with self.tx() as db:
            db.execute(
                # pid: set by the process that starts the run right after (see liveness.py)
                "INSERT INTO runs (id, workflow, name, state, started, heartbeat,"
                " integration_branch, options) VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
                (run_id, workflow, name, now, now, branch, json.dumps(options)),
            )
            db.executemany(
                "INSERT INTO tasks (run_id, task_id, seq, group_id, agent, state, spec_hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(run_id, t, i, g, a, s, h) for i, (t, g, a, s, h) in enumerate(tasks)],
            )

    def update_run(self, run_id: str, **fields: Any) -> None:
        sets, args = _assignments(fields, RUN_COLUMNS)
        with self.tx() as db:
            db.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*args, run_id))

    def run(self, run_id: str) -> RunRow | None:
        return _first(self._runs("SELECT * FROM runs WHERE id = ?", (run_id,)))

    def runs(self, limit: int = 50) -> list[RunRow]:
        return self._runs("SELECT * FROM runs ORDER BY started DESC LIMIT ?", (limit,))

    def latest_run(self) -> RunRow | None:
        return _first(self._runs("SELECT * FROM runs ORDER BY started DESC LIMIT 1"))

    def active_runs(self, name: str) -> list[RunRow]:
        """Runs of workflow ``name`` that may still have a runner (`cancelling` too: its
        runner is still stopping agents and may merge what they left)."""
        return self._runs(
            "SELECT * FROM runs WHERE name = ? AND state IN ('running', 'cancelling')", (name,)
        )

    def delete_run(self, run_id: str) -> None:
        """Take a run out again, rows of every table: for a run refused while it was being
        recorded, which must leave no trace (it never started)."""
        with self.tx() as db:
            for table in ("events", "attempts", "tasks"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def find_run(self, prefix: str) -> list[RunRow]:
        return self._runs(
            "SELECT * FROM runs WHERE id LIKE ? ORDER BY started DESC", (prefix + "%",)
        )

    # -- tasks --------------------------------------------------------------

    def update_task(self, run_id: str, task_id: str, **fields: Any) -> None:
        sets, args = _assignments(fields, TASK_COLUMNS)
        with self.tx() as db:
            db.execute(
                f"UPDATE tasks SET {sets} WHERE run_id = ? AND task_id = ?",
                (*args, run_id, task_id),
            )

    def tasks(self, run_id: str) -> list[TaskRow]:
        return self._tasks("SELECT * FROM tasks WHERE run_id = ? ORDER BY seq", (run_id,))

    def tasks_in_state(self, run_id: str, state: str) -> list[str]:
        rows = self._all(
            "SELECT task_id FROM tasks WHERE run_id = ? AND state = ?", (run_id, state)
        )
        return [r["task_id"] for r in rows]

    def task(self, run_id: str, task_id: str) -> TaskRow | None:
        sql = "SELECT * FROM tasks WHERE run_id = ? AND task_id = ?"
        return _first(self._tasks(sql, (run_id, task_id)))

    def last_success(self, name: str, task_id: str) -> TaskRow | None:
        """The newest succeeded record of a task across runs of a workflow."""
        return _first(self._tasks(
            "SELECT t.* FROM tasks t JOIN runs r ON r.id = t.run_id WHERE r.name = ?"
            " AND t.task_id = ? AND t.state = 'succeeded' ORDER BY t.finished DESC LIMIT 1",
            (name, task_id),
        ))  # fmt: skip

    # -- attempts -----------------------------------------------------------

    def add_attempt(self, run_id: str, task_id: str, n: int, **fields: Any) -> None:
        cols = ["run_id", "task_id", "n", "started", *fields]
        marks = ", ".join("?" for _ in cols)
        _assignments(fields, ATTEMPT_COLUMNS)
        with self.tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO attempts ({', '.join(cols)}) VALUES ({marks})",
                (run_id, task_id, n, time.time(), *fields.values()),
            )

    def update_attempt(self, run_id: str, task_id: str, n: int, **fields: Any) -> None:
        sets, args = _assignments(fields, ATTEMPT_COLUMNS)
        with self.tx() as db:
            db.execute(
                f"UPDATE attempts SET {sets} WHERE run_id = ? AND task_id = ? AND n = ?",
                (*args, run_id, task_id, n),
            )

    def attempts(self, run_id: str, task_id: str | None = None) -> list[AttemptRow]:
        if task_id is None:
            sql = "SELECT * FROM attempts WHERE run_id = ? ORDER BY started"
            return self._attempts(sql, (run_id,))
        return self._attempts(
            "SELECT * FROM attempts WHERE run_id = ? AND task_id = ? ORDER BY n",
            (run_id, task_id),
        )

    def run_cost(self, run_id: str) -> float:
        row = self._one("SELECT SUM(cost_usd) AS c FROM attempts WHERE run_id = ?", (run_id,))
        return float(row["c"] or 0.0) if row else 0.0

    def task_cost(self, run_id: str, task_id: str) -> float:
        row = self._one(
            "SELECT SUM(cost_usd) AS c FROM attempts WHERE run_id = ? AND task_id = ?",
            (run_id, task_id),
        )
        return float(row["c"] or 0.0) if row else 0.0

    def spend(self, run_id: str) -> dict[str, Spend]:
        """task -> what its agents reported over ALL its attempts (failed ones too);
        a task whose agents reported nothing is absent. Two GROUP BY queries for the run."""
        sums = self._all(
            "SELECT task_id, SUM(cost_usd) AS cost_usd, SUM(tokens_in) AS tokens_in,"
            " SUM(tokens_out) AS tokens_out, SUM(tokens_cache) AS tokens_cache,"
            " SUM(turns) AS turns FROM attempts WHERE run_id = ? GROUP BY task_id",
            (run_id,),
        )
        models: dict[str, tuple[str, ...]] = {}
        for r in self._all(  # each model once, in the order the attempts first used it
            "SELECT task_id, model FROM attempts WHERE run_id = ? AND model IS NOT NULL"
            " GROUP BY task_id, model ORDER BY task_id, MIN(n)",
            (run_id,),
        ):
            models[r["task_id"]] = (*models.get(r["task_id"], ()), r["model"])
        out = {r["task_id"]: replace(Spend.of(r), models=models.get(r["task_id"], ()))
               for r in sums}  # fmt: skip
        return {t: s for t, s in out.items() if s.reported}

    # -- events -------------------------------------------------------------

    def emit(
        self,
        run_id: str,
        kind: str,
        task_id: str | None = None,
        level: str = "info",
        **data: Any,
    ) -> EventRow:
        ts = time.time()
        payload = json.dumps(data, default=str)
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO events (run_id, ts, kind, level, task_id, data)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, ts, kind, level, task_id, payload),
            )
        return {
            "id": cur.lastrowid or 0,
            "run_id": run_id,
            "ts": ts,
            "kind": kind,
            "level": level,
            "task_id": task_id,
            "data": data,
        }

    def events(
        self,
        run_id: str,
        after: int = 0,
        levels: tuple[str, ...] = (),
        limit: int = -1,
        newest: bool = False,
        kinds: tuple[str, ...] = (),
    ) -> list[EventRow]:
        where = "run_id = ? AND id > ?"
        args: list[Any] = [run_id, after]
        if levels:
            where += f" AND level IN ({', '.join('?' for _ in levels)})"
            args.extend(levels)
        if kinds:
            where += f" AND kind IN ({', '.join('?' for _ in kinds)})"
            args.extend(kinds)
        order = "DESC" if newest else "ASC"
        rows = self._all(
            f"SELECT * FROM events WHERE {where} ORDER BY id {order} LIMIT ?", (*args, limit)
        )
        for r in rows:
            r["data"] = json.loads(r["data"])
        typed = cast("list[EventRow]", rows)
        return typed[::-1] if newest else typed


def open_store(state_dir: Path) -> Store:
    return Store(Layout(state_dir).db)
