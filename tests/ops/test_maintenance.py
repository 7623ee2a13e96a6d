"""rollback, clean and export end to end: real git repositories, real runs, the installed CLI."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.testing.repos import git
from tests.testing.runner import cli, conductor_argv, db_rows, run_json, write_workflow

BRANCH = "conductor/t"

TWO = """
version: 1
name: t
tasks:
  A: {run: "echo a > a.txt"}
  C: {run: "echo c > c.txt"}
  B: {run: "cat a.txt > b.txt", depends_on: [A]}
"""

LEFTOVERS = """
version: 1
name: t
workspace: {keep: always}
tasks:
  A: {run: "echo a > a.txt"}
  F: {run: "echo partial > f.txt; exit 3", retries: 0}
"""


def runs(repo: Path) -> list[str]:
    return [r["id"] for r in db_rows(repo, "SELECT id FROM runs ORDER BY started")]


def run_ok(repo: Path, *args: str) -> str:
    proc = cli(repo, "run", "wf.yaml", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return runs(repo)[-1]


def files(repo: Path, ref: str) -> set[str]:
    return set(git(repo, "ls-tree", "--name-only", ref).split())


def snapshot(repo: Path) -> tuple[str, str, str, list[dict[str, object]]]:
    """Everything a command could change: refs, worktrees, the user's status, task rows."""
    return (
        git(repo, "for-each-ref"),
        git(repo, "worktree", "list", "--porcelain"),
        git(repo, "status", "--porcelain"),
        db_rows(repo, "SELECT run_id, task_id, state FROM tasks ORDER BY run_id, task_id"),
    )


def task_state(repo: Path, run: str, task: str) -> str:
    rows = db_rows(repo, "SELECT state FROM tasks WHERE run_id = ? AND task_id = ?", run, task)
    return str(rows[0]["state"])


# ---- rollback ---------------------------------------------------------------------------


@pytest.mark.slow
def test_rollback_of_a_run_restores_the_base_and_the_rerun_redoes_its_tasks(repo: Path) -> None:
    write_workflow(repo, TWO)
    base = git(repo, "rev-parse", "main")
    run = run_ok(repo)
    head = git(repo, "rev-parse", BRANCH)
    assert head != base
    status = git(repo, "status", "--porcelain")

    proc = cli(repo, "rollback", run[:12])
    assert proc.returncode == 0, proc.stderr
    assert git(repo, "rev-parse", BRANCH) == base
    saved = next(w.rstrip(":") for w in proc.stdout.split() if w.startswith("refs/conductor/"))
    assert saved.startswith(f"refs/conductor/rollback/{run}/")
    assert git(repo, "rev-parse", saved) == head  # the old head stays reachable
    assert f"git update-ref refs/heads/{BRANCH} {head}" in proc.stdout
    assert git(repo, "rev-parse", "main") == base  # the user's branch and files are untouched
    assert git(repo, "status", "--porcelain") == status
    assert {task_state(repo, run, t) for t in "ABC"} == {"rolled_back"}
    kinds = db_rows(repo, "SELECT kind FROM events WHERE run_id = ? AND kind = 'rolled_back'", run)
    assert len(kinds) == 4  # one per task and one for the run

    code, events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert {e["task"] for e in events if e["kind"] == "task_started"} == {"A", "B", "C"}
    assert {"a.txt", "b.txt", "c.txt"} <= files(repo, BRANCH)


@pytest.mark.slow
def test_rollback_of_one_task_reverts_only_its_merge(repo: Path) -> None:
    write_workflow(repo, TWO)
    run = run_ok(repo)
    before = int(git(repo, "rev-list", "--count", BRANCH))

    proc = cli(repo, "rollback", run, "--task", "C")
    assert proc.returncode == 0, proc.stderr
    assert "c.txt" not in files(repo, BRANCH)
    assert {"a.txt", "b.txt"} <= files(repo, BRANCH)
    assert int(git(repo, "rev-list", "--count", BRANCH)) == before + 1
    message = git(repo, "log", "-1", "--format=%B", BRANCH)
    merge = db_rows(repo, "SELECT merge_commit FROM tasks WHERE task_id = 'C'")[0]["merge_commit"]
    for trailer in (f"Conductor-Run: {run}", "Conductor-Task: C", f"Conductor-Revert: {merge}"):
        assert trailer in message
    assert task_state(repo, run, "C") == "rolled_back"
    assert task_state(repo, run, "A") == "succeeded"

    again = cli(repo, "rollback", run, "--task", "C")
    assert again.returncode == 2 and "already" in again.stderr

    code, events, err = run_json(repo, "wf.yaml")  # only C is no longer up to date
    assert code == 0, err
    assert [e["task"] for e in events if e["kind"] == "task_started"] == ["C"]
    assert "c.txt" in files(repo, BRANCH)


@pytest.mark.slow
def test_rollback_is_refused_when_a_later_run_merged_on_top(repo: Path) -> None:
    write_workflow(repo, TWO)
    first = run_ok(repo)
    write_workflow(repo, TWO + '  D: {run: "echo d > d.txt"}\n')
    second = run_ok(repo)
    head = git(repo, "rev-parse", BRANCH)
    state = snapshot(repo)

    proc = cli(repo, "rollback", first)
    assert proc.returncode == 2
    assert second in proc.stderr and "--force" in proc.stderr
    assert snapshot(repo) == state

    forced = cli(repo, "rollback", first, "--force")
    assert forced.returncode == 0, forced.stderr
    assert git(repo, "rev-parse", BRANCH) == git(repo, "rev-parse", "main")
    assert head in forced.stdout
    assert task_state(repo, second, "D") == "rolled_back"  # its merge left the branch too


@pytest.mark.slow
def test_rollback_and_clean_leave_a_live_run_alone(repo: Path, tmp_path: Path) -> None:
    gate = tmp_path / "go"
    write_workflow(repo, TWO)
    first = run_ok(repo)
    write_workflow(repo, f'{TWO}  W: {{run: "while [ ! -e {gate} ]; do sleep 0.05; done"}}\n')
    runner = subprocess.Popen(
        [*conductor_argv(), "run", "wf.yaml"],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 20
        started = "SELECT 1 FROM events WHERE kind = 'task_started' AND task_id = 'W'"
        while not db_rows(repo, started):
            assert time.time() < deadline, "the second run never started W"
            time.sleep(0.05)
        live = runs(repo)[-1]
        before = git(repo, "rev-parse", BRANCH)

        for args in ([live], [first]):  # the live run, and an older run on its branch
            proc = cli(repo, "rollback", *args)
            assert proc.returncode == 2 and "running" in proc.stderr, proc.stderr
        assert git(repo, "rev-parse", BRANCH) == before

        proc = cli(repo, "clean")
        assert proc.returncode == 0, proc.stderr
        assert live in git(repo, "worktree", "list")
        assert git(repo, "for-each-ref", f"refs/conductor/{live}/")
    finally:
        gate.touch()
        assert runner.wait(timeout=30) == 0


@pytest.mark.slow
def test_bad_rollback_inputs_exit_2_and_change_nothing(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, LEFTOVERS.replace("keep: always", "keep: never"))
    cli(repo, "run", "wf.yaml")
    run = runs(repo)[-1]
    state = snapshot(repo)
    cases = {
        ("rollback", "nosuchrun"): "no run",
        ("rollback", run, "--task", "Z"): "no task `Z`",
        ("rollback", run, "--task", "F"): "was not merged",
        ("rollback", run, "--task", "A", "--force"): "--force",
    }
    for args, message in cases.items():
        proc = cli(repo, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert snapshot(repo) == state

    git(repo, "worktree", "add", "-q", str(tmp_path / "look"), BRANCH)
    proc = cli(repo, "rollback", run)
    assert proc.returncode == 2 and "checked out" in proc.stderr
    assert snapshot(repo)[0] == state[0]
    assert git(tmp_path / "look", "status", "--porcelain") == ""


# ---- clean ------------------------------------------------------------------------------


@pytest.mark.slow
def test_clean_removes_leftovers_but_keeps_dirty_worktrees_and_unmerged_work(repo: Path) -> None:
    write_workflow(repo, LEFTOVERS)
    assert cli(repo, "run", "wf.yaml").returncode == 1
    run = runs(repo)[-1]
    wt = repo / ".conductor" / "worktrees" / run
    (wt / "A-1" / "notes.txt").write_text("my own edits\n")

    state = snapshot(repo)
    proc = cli(repo, "clean", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "would remove worktree" in proc.stdout and "would remove ref" in proc.stdout
    assert "nothing changed" in proc.stdout
    assert snapshot(repo) == state and (wt / "F-1").is_dir()

    proc = cli(repo, "clean")
    assert proc.returncode == 0, proc.stderr
    assert "kept worktree" in proc.stdout and "uncommitted" in proc.stdout
    assert (wt / "A-1" / "notes.txt").exists()
    assert not (wt / "F-1").exists()
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/conductor/").splitlines() == [
        f"refs/conductor/{run}/A/1/pre"  # A's worktree is kept, so is where it began
    ]
    branches = git(repo, "branch", "--format=%(refname:short)").split()
    assert f"{BRANCH}.attempts/{run}/F/1" in branches  # a failed attempt's only copy of its work

    proc = cli(repo, "clean", "--all", "--force")
    assert proc.returncode == 0, proc.stderr
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "for-each-ref", "refs/conductor/") == ""
    assert ".attempts/" not in git(repo, "branch", "--list")
    assert not wt.exists()
    assert "main" in git(repo, "branch", "--show-current")


# ---- export -----------------------------------------------------------------------------


def test_export_json_holds_every_task_attempt_and_event(repo: Path, tmp_path: Path) -> None:
    write_workflow(repo, LEFTOVERS.replace("keep: always", "keep: never"))
    cli(repo, "run", "wf.yaml")
    run = runs(repo)[-1]
    proc = cli(repo, "export", run, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["run"]["id"] == run and isinstance(doc["run"]["options"], dict)
    assert {t["task_id"] for t in doc["tasks"]} == {"A", "F"}
    stored = db_rows(repo, "SELECT task_id, n FROM attempts WHERE run_id = ?", run)
    assert sorted((a["task_id"], a["n"]) for a in doc["attempts"]) == sorted(
        (a["task_id"], a["n"]) for a in stored
    )
    assert all(a["checks"] is None or isinstance(a["checks"], list) for a in doc["attempts"])
    events = db_rows(repo, "SELECT id FROM events WHERE run_id = ?", run)
    assert [e["id"] for e in doc["events"]] == [e["id"] for e in events]
    assert all(isinstance(e["data"], dict) for e in doc["events"])

    out = tmp_path / "out" / "run.json"
    assert cli(repo, "export", run, "-f", "json", "-o", str(out)).returncode == 0
    assert json.loads(out.read_text()) == doc


@pytest.mark.slow
def test_export_markdown_has_the_task_table_even_without_the_workflow(repo: Path) -> None:
    write_workflow(repo, LEFTOVERS.replace("keep: always", "keep: never"))
    cli(repo, "run", "wf.yaml")
    proc = cli(repo, "export", "latest", "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    assert "| Task |" in proc.stdout and "**A**" in proc.stdout and "**F**" in proc.stdout

    (repo / "wf.yaml").unlink()
    proc = cli(repo, "export", "latest", "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    assert "state store" in proc.stdout
    assert "| Task |" in proc.stdout and "**A**" in proc.stdout and "failed" in proc.stdout

    bad = cli(repo, "export", "latest", "--format", "xml")
    assert bad.returncode == 2 and "format" in bad.stderr
