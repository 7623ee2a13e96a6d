"""The worktree pool through whole runs: reuse across tasks and runs, `workspace.reuse`
skipping `setup` while its key holds, `clean` emptying it, and kill -9 during a run."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.testing.repos import attempt_worktrees, git, make_repo, pooled_worktrees
from tests.testing.runner import cli, conductor_argv, db_rows, run_json, write_workflow

SETUP = "mkdir -p node_modules && echo x >> node_modules/installs"
WORKFLOW = f"""
version: 1
name: t
concurrency: 2
workspace:
  setup: ["{SETUP}"]
  reuse: {{keep: [node_modules], key: [package-lock.json]}}
tasks:
  A: {{run: "echo a > a.txt && wc -l < node_modules/installs > seen-a.txt"}}
  B: {{run: "wc -l < node_modules/installs > seen-b.txt && echo 2 > package-lock.json",
       depends_on: [A]}}
  C: {{run: "wc -l < node_modules/installs > seen-c.txt && touch left.log", depends_on: [B]}}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", {"package-lock.json": "1\n",
                                         ".gitignore": "node_modules/\n*.log\n"})  # fmt: skip
    write_workflow(repo, WORKFLOW)
    return repo


def seen(repo: Path, task: str) -> str:
    return git(repo, "show", f"conductor/t:seen-{task}.txt").strip()


def test_setup_is_skipped_while_the_key_holds_and_runs_again_when_it_changes(repo: Path) -> None:
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    # A installed; B found A's node_modules (same key); B changed the key, so C's
    # worktree dropped node_modules and set up again from scratch
    assert (seen(repo, "a"), seen(repo, "b"), seen(repo, "c")) == ("1", "1", "1")
    assert "node_modules" not in git(repo, "ls-tree", "-r", "--name-only", "conductor/t")
    slots = pooled_worktrees(repo)
    assert len(slots) == 1 and attempt_worktrees(repo) == []
    assert skipped_setup(repo) == ["B"]


def skipped_setup(repo: Path) -> list[str]:
    """Tasks of the latest run whose setup was skipped (kept directories reused)."""
    run = db_rows(repo, "SELECT id FROM runs ORDER BY started DESC LIMIT 1")[0]["id"]
    rows = db_rows(repo, "SELECT task_id, data FROM events WHERE run_id = ? AND kind = ?"
                   " ORDER BY id", run, "task_progress")  # fmt: skip
    return [r["task_id"] for r in rows if "setup skipped" in r["data"]]


def test_the_pool_serves_the_next_run_and_clean_empties_it(repo: Path) -> None:
    assert run_json(repo, "wf.yaml")[0] == 0
    (slot,) = pooled_worktrees(repo)
    assert run_json(repo, "wf.yaml", "--force")[0] == 0
    assert pooled_worktrees(repo) == [slot]  # the same worktree, reused across runs
    # --force took the earlier results out first, so A starts from package-lock 1 again:
    # C's node_modules (made for 2) is dropped for A, A's is kept for B
    assert skipped_setup(repo) == ["B"] and seen(repo, "c") == "1"

    dry = cli(repo, "clean", "--dry-run")
    assert dry.returncode == 0 and ".conductor/worktrees/.pool/" in dry.stdout
    assert pooled_worktrees(repo) == [slot]
    proc = cli(repo, "clean")
    assert proc.returncode == 0, proc.stderr
    assert pooled_worktrees(repo) == [] and not slot.exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


@pytest.mark.slow  # kills a runner and resumes it
def test_kill_9_mid_run_then_resume_leaves_a_sound_pool(repo: Path) -> None:
    tasks = "".join(f"  T{i}: {{run: 'echo {i} > f{i}.txt'}}\n" for i in range(12))
    write_workflow(repo, "version: 1\nname: t\nconcurrency: 3\ntasks:\n" + tasks)
    for step in ("worktree", "commit", "merged"):
        env = {**os.environ, "CONDUCTOR_CRASH_AT": f"{step}:4"}
        proc = subprocess.run([*conductor_argv(), "run", "wf.yaml", "--force"], cwd=repo,
                              env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        run = db_rows(repo, "SELECT id FROM runs ORDER BY started DESC LIMIT 1")[0]["id"]
        done = cli(repo, "resume", run)
        assert done.returncode == 0, done.stderr
        for i in range(12):
            assert git(repo, "show", f"conductor/t:f{i}.txt") == str(i)
        assert attempt_worktrees(repo) == []
        assert 1 <= len(pooled_worktrees(repo)) <= 3
