"""The state room directly: the `.conductor/` layout, typed store rows, the emitter."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conductor.errors import StoreError
from conductor.state.events import Emitter, event_json
from conductor.state.layout import Layout, find_state_db, of_db
from conductor.state.liveness import RunLock, is_live, shown_state
from conductor.state.records import EventRow
from conductor.state.states import RUN_ENDED, RUN_LIVE, TASK_ACTIVE, TASK_OK, TASK_TERMINAL
from conductor.state.store import Store, open_store

RUN = "20260101-000000-abcd"


def _store(root: Path) -> Store:
    store = open_store(Layout.of_repo(root).state_dir)
    store.create_run(RUN, "wf.yaml", "wf", "conductor/wf", {"force": False},
                     [("A", "G", "sh", "pending", "h1"), ("B", None, "sh", "pending", "h2")])  # fmt: skip
    return store


def test_the_layout_names_every_file_under_dot_conductor(tmp_path: Path) -> None:
    lay = Layout.of_repo(tmp_path)
    assert lay.state_dir == tmp_path / ".conductor" and lay.repo_root == tmp_path
    assert lay.db == tmp_path / ".conductor" / "state.db"
    assert lay.attempt_worktree(RUN, "T1", 2) == tmp_path / f".conductor/worktrees/{RUN}/T1-2"
    assert lay.gate_worktree(RUN, "G") == tmp_path / f".conductor/worktrees/{RUN}/gate-G"
    assert lay.attempt_log(RUN, "T1", 2) == tmp_path / f".conductor/runs/{RUN}/logs/T1-2.log"
    assert lay.prompt_file(RUN, "T1", 2).name == "T1-2.md"
    assert lay.runner_lock(RUN).parent == lay.runner_log(RUN).parent == lay.run_dir(RUN)
    assert of_db(lay.db) == lay


def test_the_store_is_found_from_inside_a_task_worktree(tmp_path: Path) -> None:
    assert find_state_db(tmp_path) is None
    _store(tmp_path).close()
    inside = Layout.of_repo(tmp_path).attempt_worktree(RUN, "A", 1) / "src"
    inside.mkdir(parents=True)
    assert find_state_db(inside) == tmp_path / ".conductor" / "state.db"


def test_rows_come_back_as_the_records_they_are_typed_as(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        store.update_task(RUN, "A", state="succeeded", merge_commit="abc", cost_usd=0.5)
        store.add_attempt(RUN, "A", 1, state="succeeded", branch="b", log_path="l")
        run = store.run(RUN)
        assert run is not None and run["integration_branch"] == "conductor/wf"
        assert [t["task_id"] for t in store.tasks(RUN)] == ["A", "B"]  # file order
        assert store.task(RUN, "A") == {**store.tasks(RUN)[0]}
        success = store.last_success("wf", "A")
        assert success is not None and success["merge_commit"] == "abc"
        assert store.last_success("wf", "B") is None
        [att] = store.attempts(RUN, "A")
        assert (att["n"], att["branch"], att["log_path"]) == (1, "b", "l")
        assert store.run_cost(RUN) == 0.0 and store.task(RUN, "nope") is None


def test_the_emitter_masks_secrets_and_feeds_its_sinks_in_order(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        seen: list[str] = []
        emit = Emitter(store, RUN, redact=lambda s: s.replace("hunter2", "***"))
        emit.sinks.append(lambda row: seen.append(row["kind"]))
        row = emit("task_failed", "A", error="token hunter2 rejected")
        emit("task_completed", "B")
        assert seen == ["task_failed", "task_completed"]
        assert row["level"] == "error"  # the kind's default level
        stored = store.events(RUN)
        assert stored[0]["data"] == {"error": "token *** rejected"}  # masked before disk
        assert event_json(stored[1]) == {"id": stored[1]["id"], "ts": stored[1]["ts"],
                                         "run": RUN, "kind": "task_completed", "level": "info",
                                         "task": "B", "data": {}}  # fmt: skip


def test_events_written_by_another_process_reach_the_sinks_once(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        seen: list[str] = []
        emit = Emitter(store, RUN)
        emit.sinks.append(lambda row: seen.append(row["kind"]))
        emit("task_started", "A")
        with Store(store.path) as other:  # `conductor progress` from inside a task
            Emitter(other, RUN)("task_progress", "A", percent=50)
        emit.forward_foreign()
        emit.forward_foreign()
        assert seen == ["task_started", "task_progress"]


def test_forwarding_reads_only_what_came_after_the_runners_own_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The heartbeat's look for foreign events reads the store from a cursor the runner's
    own events move: in a long run it re-read (and decoded) every event it had written
    since the last heartbeat. A foreign one in between is still forwarded, once."""
    with _store(tmp_path) as store:
        seen: list[str] = []
        emit = Emitter(store, RUN)
        emit.sinks.append(lambda row: seen.append(row["kind"]))
        read: list[int] = []
        real = store.events

        def counting(*args: Any, **kw: Any) -> list[EventRow]:
            rows = real(*args, **kw)
            read.append(len(rows))
            return rows

        monkeypatch.setattr(store, "events", counting)
        for _ in range(3):
            emit("task_phase", "A", phase="agent")
        emit.forward_foreign()
        assert read == [0]
        with Store(store.path) as other:
            Emitter(other, RUN)("task_progress", "A", percent=50)
        emit("task_phase", "A", phase="merge")
        emit.forward_foreign()
        emit.forward_foreign()
        assert seen == ["task_phase"] * 4 + ["task_progress"] and read == [0, 2, 0]


def test_a_run_is_live_only_while_its_runner_holds_the_lock(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        state_dir = store.path.parent
        store.update_run(RUN, pid=12345, heartbeat=0.0)
        run = store.run(RUN)
        assert run is not None and not is_live(state_dir, run)
        assert shown_state(state_dir, run) == "interrupted"  # running, but no runner
        lock = RunLock(state_dir, RUN).acquire()
        try:
            assert is_live(state_dir, run) and shown_state(state_dir, run) == "running"
        finally:
            lock.release()


def test_a_starting_run_is_live_only_while_its_starter_lives(tmp_path: Path) -> None:
    # between the run's row and its lock (start-up checks, taking out earlier results);
    # a starter killed there frees the run at once, not after the start-up grace
    with _store(tmp_path) as store:
        state_dir = store.path.parent
        gone = subprocess.Popen(["true"])
        gone.wait()
        for pid, live in ((None, True), (os.getpid(), True), (gone.pid, False)):
            store.update_run(RUN, pid=pid, heartbeat=time.time())
            run = store.run(RUN)
            assert run is not None and is_live(state_dir, run) is live, pid


def test_the_named_state_sets_agree_with_each_other() -> None:
    assert TASK_OK <= TASK_TERMINAL and not TASK_ACTIVE & TASK_TERMINAL
    assert not RUN_LIVE & RUN_ENDED


_V1_ATTEMPTS = """
CREATE TABLE attempts (run_id TEXT NOT NULL, task_id TEXT NOT NULL, n INTEGER NOT NULL,
  state TEXT NOT NULL, started REAL NOT NULL, finished REAL, worktree TEXT, branch TEXT,
  pre_commit TEXT, post_commit TEXT, exit_code INTEGER, pid INTEGER, pid_start REAL,
  log_path TEXT, error TEXT, checks TEXT, files_changed INTEGER, insertions INTEGER,
  deletions INTEGER, cost_usd REAL, tokens_in INTEGER, tokens_out INTEGER, session_id TEXT,
  PRIMARY KEY (run_id, task_id, n));
INSERT INTO attempts (run_id, task_id, n, state, started, cost_usd)
  VALUES ('r1', 'A', 1, 'succeeded', 1.0, 0.25);
PRAGMA user_version = 1;
"""


def test_a_store_from_the_previous_version_is_upgraded_keeping_its_history(
    tmp_path: Path,
) -> None:
    db = Layout.of_repo(tmp_path).db
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as old:
        old.executescript(_V1_ATTEMPTS)
    with open_store(db.parent) as store:
        store.update_attempt("r1", "A", 1, turns=3, model="m", tokens_cache=7, outputs="{}",
                             host="h1", pool="gpu")  # fmt: skip
        (row,) = store.attempts("r1", "A")
    assert row["cost_usd"] == 0.25 and row["turns"] == 3 and row["model"] == "m"
    assert (row["host"], row["pool"]) == ("h1", "gpu")  # version 3's columns


def test_a_store_written_by_a_newer_conductor_is_refused_clearly(tmp_path: Path) -> None:
    db = Layout.of_repo(tmp_path).db
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as new:
        new.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer conductor"):
        open_store(db.parent)
