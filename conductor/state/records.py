"""The rows of the store: its SQL schema and a typed record per table.

Records are TypedDicts: what sqlite3 hands back is a dict already, so typing it costs
nothing at run time, while mypy checks every field a reader names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar

_N = TypeVar("_N", int, float)

SCHEMA_VERSION = 4

# Columns added since version 1, as ALTER TABLE adds them to an older store (a store keeps
# its history across upgrades: `conductor runs` and `resume` must work on yesterday's runs).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE attempts ADD COLUMN tokens_cache INTEGER",
        "ALTER TABLE attempts ADD COLUMN turns INTEGER",
        "ALTER TABLE attempts ADD COLUMN model TEXT",
        "ALTER TABLE attempts ADD COLUMN outputs TEXT",
    ),
    3: (
        "ALTER TABLE attempts ADD COLUMN host TEXT",
        "ALTER TABLE attempts ADD COLUMN pool TEXT",
    ),
    4: ("ALTER TABLE attempts ADD COLUMN changed_files TEXT",),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,          -- path of the workflow file, relative to the repo root
    name TEXT NOT NULL,              -- workflow name
    state TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    pid INTEGER,
    heartbeat REAL,
    base_commit TEXT,                -- integration head when the run started
    integration_branch TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    reason TEXT
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    seq INTEGER NOT NULL,            -- file order, for stable listings
    group_id TEXT,
    agent TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    spec_hash TEXT,
    started REAL,
    finished REAL,
    result_commit TEXT,
    merge_commit TEXT,
    error TEXT,
    progress REAL,
    step TEXT,
    cost_usd REAL,
    PRIMARY KEY (run_id, task_id)
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    state TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    worktree TEXT,
    branch TEXT,
    pre_commit TEXT,
    post_commit TEXT,
    exit_code INTEGER,
    pid INTEGER,
    pid_start REAL,
    log_path TEXT,
    error TEXT,
    checks TEXT,                     -- JSON list of validator results
    files_changed INTEGER,
    insertions INTEGER,
    deletions INTEGER,
    cost_usd REAL,
    tokens_in INTEGER,
    tokens_out INTEGER,
    session_id TEXT,
    tokens_cache INTEGER,            -- of tokens_in, how many were read from or written to cache
    turns INTEGER,
    model TEXT,
    outputs TEXT,                    -- JSON object: what the task wrote to $CONDUCTOR_OUTPUT
    host TEXT,                       -- where it ran: a host name, or a Ray node id
    pool TEXT,                       -- the pool whose slot and quota it used
    changed_files TEXT,              -- JSON list: the paths post_commit changed since pre_commit
    PRIMARY KEY (run_id, task_id, n)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    task_id TEXT,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, id);
CREATE INDEX IF NOT EXISTS tasks_done ON tasks (task_id, state);
"""

RUN_COLUMNS = ("state", "finished", "pid", "heartbeat", "base_commit", "reason", "options")
TASK_COLUMNS = (
    "state",
    "attempts",
    "spec_hash",
    "started",
    "finished",
    "result_commit",
    "merge_commit",
    "error",
    "progress",
    "step",
    "cost_usd",
    "agent",
)
ATTEMPT_COLUMNS = (
    "state",
    "finished",
    "worktree",
    "branch",
    "pre_commit",
    "post_commit",
    "exit_code",
    "pid",
    "pid_start",
    "log_path",
    "error",
    "checks",
    "files_changed",
    "insertions",
    "deletions",
    "cost_usd",
    "tokens_in",
    "tokens_out",
    "session_id",
    "tokens_cache",
    "turns",
    "model",
    "outputs",
    "host",
    "pool",
    "changed_files",
)


class RunRow(TypedDict):
    id: str
    workflow: str  # path of the workflow file, relative to the repository root
    name: str
    state: str  # a RunState
    started: float
    finished: float | None
    pid: int | None  # the runner's, once it took the run's lock
    heartbeat: float | None
    base_commit: str | None  # integration head when the run started
    integration_branch: str
    options: str  # JSON: selection, force, strategy, fail_fast, concurrency
    reason: str | None


class TaskRow(TypedDict):
    run_id: str
    task_id: str
    seq: int
    group_id: str | None
    agent: str | None
    state: str  # a TaskState
    attempts: int
    spec_hash: str | None
    started: float | None
    finished: float | None
    result_commit: str | None
    merge_commit: str | None
    error: str | None
    progress: float | None
    step: str | None
    cost_usd: float | None


class AttemptRow(TypedDict):
    run_id: str
    task_id: str
    n: int
    state: str  # an AttemptState
    started: float
    finished: float | None
    worktree: str | None
    branch: str | None
    pre_commit: str | None
    post_commit: str | None
    exit_code: int | None
    pid: int | None
    pid_start: float | None
    log_path: str | None
    error: str | None
    checks: str | None  # JSON list of validator results
    files_changed: int | None
    insertions: int | None
    deletions: int | None
    cost_usd: float | None
    tokens_in: int | None
    tokens_out: int | None
    session_id: str | None
    tokens_cache: int | None
    turns: int | None
    model: str | None
    outputs: str | None  # JSON object, or None when the task wrote none
    host: str | None  # where it ran: the host name (local), the Ray node id (ray)
    pool: str | None  # None: recorded before pools existed
    # JSON list of the paths post_commit changed since pre_commit, recorded with it
    # (None: not committed, or recorded before version 4: ask git)
    changed_files: str | None


@dataclass(frozen=True)
class Spend:
    """What agents reported spending (None where none of them said), and which models."""

    cost_usd: float | None = None
    tokens_in: int | None = None  # all input, cached included
    tokens_out: int | None = None
    tokens_cache: int | None = None  # of tokens_in, read from or written to a cache
    turns: int | None = None
    models: tuple[str, ...] = ()  # in the order first seen, each once

    @classmethod
    def of(cls, a: Mapping[str, Any]) -> Spend:
        """One attempt's: its row, or a mapping with (some of) its spend columns."""
        return cls(a.get("cost_usd"), a.get("tokens_in"), a.get("tokens_out"),
                   a.get("tokens_cache"), a.get("turns"),
                   (str(a["model"]),) if a.get("model") else ())  # fmt: skip

    def __add__(self, other: Spend) -> Spend:
        models = self.models + tuple(m for m in other.models if m not in self.models)
        return Spend(_plus(self.cost_usd, other.cost_usd), _plus(self.tokens_in, other.tokens_in),
                     _plus(self.tokens_out, other.tokens_out),
                     _plus(self.tokens_cache, other.tokens_cache),
                     _plus(self.turns, other.turns), models)  # fmt: skip

    @property
    def reported(self) -> bool:
        """Whether any agent reported anything at all."""
        counts = (self.cost_usd, self.tokens_in, self.tokens_out, self.tokens_cache, self.turns)
        return bool(self.models) or any(v is not None for v in counts)


def _plus(a: _N | None, b: _N | None) -> _N | None:
    return b if a is None else a if b is None else a + b


class EventRow(TypedDict):
    id: int
    run_id: str
    ts: float
    kind: str  # an EventKind (or one a newer conductor wrote)
    level: str
    task_id: str | None
    data: dict[str, Any]
