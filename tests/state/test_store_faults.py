"""A state.db that cannot be used is one clear message, never a traceback.

Real SQLite files and the real CLI: a truncated database, a file that is no database,
a `.conductor` mounted read-only, and a database another process holds locked.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor.errors import StoreError
from conductor.state.store import Store
from tests.testing.runner import cli, write_workflow

WF = """
version: 1
name: faults
tasks:
  A: {run: "echo a > a.txt"}
"""

CORRUPT = "is not a conductor state database"


def _run_ok(repo: Path) -> Path:
    write_workflow(repo, WF)
    proc = cli(repo, "run", "wf.yaml", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return repo / ".conductor" / "state.db"


def _checkpointed(db: Path) -> None:
    """Everything in the main file, so a cut of it loses committed pages."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    for extra in ("-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)


def _assert_clean(proc: subprocess.CompletedProcess[str], words: str, code: int = 2) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert words in proc.stderr
    assert "hint:" in proc.stderr


@pytest.mark.parametrize("keep", [50, 0.5])  # a cut header; half the pages gone
def test_truncated_db_is_a_message_for_every_command(repo: Path, keep: float) -> None:
    db = _run_ok(repo)
    _checkpointed(db)
    data = db.read_bytes()
    db.write_bytes(data[: int(keep if keep >= 1 else len(data) * keep)])
    for args in (["status"], ["runs"], ["run", "wf.yaml", "--force"]):
        _assert_clean(cli(repo, *args), CORRUPT)


def test_garbage_file_as_state_db(repo: Path) -> None:
    write_workflow(repo, WF)
    state = repo / ".conductor"
    state.mkdir()
    (state / "state.db").write_bytes(b"this is not sqlite at all\n" * 200)
    for args in (["status"], ["runs"], ["run", "wf.yaml"]):
        proc = cli(repo, *args)
        _assert_clean(proc, CORRUPT)
        assert "move it aside and run again" in proc.stderr
        assert "history will start empty" in proc.stderr


def test_store_raises_store_error_not_sqlite_error(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(StoreError) as info:
        Store(db)
    assert info.value.kind == "corrupt"
    assert str(db) in str(info.value)


@pytest.fixture
def read_only(repo: Path) -> Iterator[Path]:
    """The repository's `.conductor` mounted read-only (root ignores chmod)."""
    if shutil.which("mount") is None:
        pytest.skip("no mount(8) to make a read-only bind mount")
    _run_ok(repo)
    state = repo / ".conductor"
    _checkpointed(state / "state.db")
    proc = subprocess.run(["mount", "--bind", "-o", "ro", str(state), str(state)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {proc.stderr.strip()}")
    try:
        try:
            (state / "probe").write_text("x")
            pytest.skip("the read-only mount still accepts writes")
        except OSError:
            pass
        yield state
    finally:
        subprocess.run(["umount", str(state)], check=False)


def test_read_only_state_dir_is_a_message(repo: Path, read_only: Path) -> None:
    proc = cli(repo, "run", "wf.yaml", "--force")
    _assert_clean(proc, "cannot write")
    assert str(read_only) in proc.stderr
    for args in (["status"], ["runs"]):  # reading still works, or says why not
        proc = cli(repo, *args)
        assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
        assert proc.returncode in (0, 2), proc.stderr


def test_locked_db_past_the_busy_timeout_is_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conductor.state import store as store_mod

    monkeypatch.setattr(store_mod, "BUSY_S", 0.2)
    db = tmp_path / "state.db"
    Store(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = Store(db)
        started = time.monotonic()
        with pytest.raises(StoreError) as info:
            store.update_run("x", state="failed")
        assert info.value.kind == "locked"
        assert "locked by another process" in info.value.render()
        assert time.monotonic() - started < 10
        store.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_locked_write_waits_while_on_locked_says_so(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    Store(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    waits: list[float] = []

    def on_locked(fault: StoreError, waited: float) -> bool:
        waits.append(waited)
        if len(waits) == 3:
            holder.execute("ROLLBACK")
        return True

    store = Store(db)
    store.wait_when_locked(on_locked, every_s=0.1)
    store.create_run("r1", "wf.yaml", "faults", "b", {}, [])
    assert len(waits) >= 3
    assert store.run("r1") is not None
    store.close()
    holder.close()
