""" "What upstream produced" in the instructions comes from the store, where each attempt's
changed files were recorded when it committed: no git process per dependency edge, the
same text as when git was asked, and git still asked for attempts recorded before the
store kept their files (a store upgraded from version 3)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor.errors import StoreError
from conductor.git import cmd as gitcmd
from conductor.ops.export import export_record
from conductor.run.outputs import upstream, upstream_values
from conductor.state.layout import Layout
from conductor.state.records import SCHEMA, SCHEMA_VERSION
from conductor.state.store import Store, open_store
from tests.testing.engine import Harness, start, task, workflow, writes

FILES = {
    "A": {"a.txt": "a\n", "dir/b c.txt": "b\n", "ünï.txt": "u\n"},
    "B": {f"many/f{i:02}.txt": f"{i}\n" for i in range(23)},
}
EXPECTED = [
    ("A", "Make A", "changed 3 file(s): a.txt, dir/b c.txt, ünï.txt"),
    ("B", "", "changed 23 file(s): " + ", ".join(f"many/f{i:02}.txt" for i in range(20))
     + " (+3 more)"),
    ("E", "", "changed 0 file(s): none"),
]  # fmt: skip


@pytest.fixture
def ran(repo: Path) -> Iterator[Harness]:
    """A, B and E (which changes nothing) ran and merged; C depends on all three."""
    wf = workflow(repo, task("A", title="Make A"), task("B"), task("E"),
                  task("C", after=["A", "B", "E"]))  # fmt: skip
    with start(wf, writes(FILES)) as h:
        result = h.drive()
        assert result.state == "succeeded", result.states()
        yield h


def lines(ran: Harness) -> list[tuple[str, str, str]]:
    task = ran.wf.tasks["C"]
    return ran.ctx.upstream(task, upstream(ran.ctx, task))


def test_each_dependency_is_read_from_the_store_once(
    ran: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its row and its attempts, once, for both the summary and the outputs (a task with
    five dependencies read the store thirty times)."""
    reads: list[str] = []
    real = Store._all

    def counting(self: Store, sql: str, args: tuple[object, ...] = ()) -> list[dict[str, object]]:
        reads.append(sql)
        return real(self, sql, args)

    monkeypatch.setattr(Store, "_all", counting)
    task = ran.wf.tasks["C"]
    seen = upstream(ran.ctx, task)
    assert ran.ctx.upstream(task, seen) == EXPECTED and upstream_values(seen) == {}
    assert len(reads) == 2 * len(task.deps)


def count_git(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    seen: list[list[str]] = []
    real = gitcmd.run

    def counting(args: list[str], cwd: Path, **kw: object) -> gitcmd.GitResult:
        seen.append(list(args))
        return real(args, cwd, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(gitcmd, "run", counting)
    return seen


def test_upstream_is_read_from_the_store_without_git(
    ran: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = count_git(monkeypatch)
    assert lines(ran) == EXPECTED
    assert seen == []
    rows = {a["task_id"]: a for a in ran.store.attempts(ran.run_id)}
    assert json.loads(rows["A"]["changed_files"] or "") == ["a.txt", "dir/b c.txt", "ünï.txt"]
    assert json.loads(rows["E"]["changed_files"] or "") == []
    prompt = ran.ctx.layout.prompt_file(ran.run_id, "C", 1).read_text()  # as it always read
    assert "- A (Make A): changed 3 file(s): a.txt, dir/b c.txt, ünï.txt\n" in prompt
    assert "- E: changed 0 file(s): none" in prompt


def test_the_export_lists_each_attempts_changed_files(ran: Harness) -> None:
    doc = export_record(ran.store, ran.run_id, ran.ws.state_dir)
    files = {a["task_id"]: a["changed_files"] for a in doc["attempts"]}
    assert files["A"] == ["a.txt", "dir/b c.txt", "ünï.txt"] and files["E"] == []


def test_attempts_recorded_before_the_column_ask_git_once_each(
    ran: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran.store._db.execute("UPDATE attempts SET changed_files = NULL")
    seen = count_git(monkeypatch)
    assert lines(ran) == EXPECTED  # the same text, from git
    assert [args[args.index("diff-tree")] for args in seen] == ["diff-tree"] * 3


def _v3_schema() -> str:
    """This version's schema without what version 4 added, as a version 3 store has it."""
    lines = [line for line in SCHEMA.splitlines() if "changed_files" not in line]
    return "\n".join(lines) + "\nPRAGMA user_version = 3;\n"


def test_a_version_3_store_is_upgraded_in_place(tmp_path: Path) -> None:
    assert SCHEMA_VERSION == 4
    db = Layout(tmp_path).db
    with sqlite3.connect(db) as old:
        old.executescript(_v3_schema())
        old.execute("INSERT INTO attempts (run_id, task_id, n, state, started, post_commit, host)"
                    " VALUES ('r1', 'A', 1, 'succeeded', 1.0, 'abc', 'h')")  # fmt: skip
    with open_store(tmp_path) as store:
        (row,) = store.attempts("r1", "A")
        assert (row["post_commit"], row["host"], row["changed_files"]) == ("abc", "h", None)
        store.update_attempt("r1", "A", 1, changed_files='["x"]')
        assert store.attempts("r1", "A")[0]["changed_files"] == '["x"]'
    with sqlite3.connect(db) as upgraded:
        assert upgraded.execute("PRAGMA user_version").fetchone()[0] == 4
        upgraded.execute("PRAGMA user_version = 5")  # then a newer conductor's: refused
    with pytest.raises(StoreError, match="newer conductor"):
        Store(db)
