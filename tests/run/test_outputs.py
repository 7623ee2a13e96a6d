"""Declared outputs are looked for in the attempt's commit, not on disk: an output that
.gitignore excludes never reaches the branch, so the attempt fails saying so."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conductor.git.trees import commit_paths, ignore_rules
from conductor.run.validators import CheckEnv, Committed, run_checks
from conductor.spec.model import Task
from tests.testing.repos import git, make_repo, write
from tests.testing.runner import cli, db_rows, write_workflow

ENV = CheckEnv({"PATH": os.environ["PATH"]})


def outputs_check(repo: Path) -> dict[str, object]:
    """The `outputs` result of the newest attempt, as recorded in the store."""
    rows = db_rows(repo, "SELECT checks FROM attempts ORDER BY rowid DESC LIMIT 1")
    return next(c for c in json.loads(rows[0]["checks"]) if c["name"] == "outputs")


def test_an_ignored_output_fails_the_attempt_naming_the_rule(repo: Path) -> None:
    write(repo / ".gitignore", "build/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore build/")
    write_workflow(repo, """
        version: 1
        name: t
        tasks:
          A: {run: "mkdir -p build && echo x > build/out.txt", outputs: [build/out.txt], retries: 0}
    """)  # fmt: skip
    proc = cli(repo, "run", "wf.yaml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    check = outputs_check(repo)
    assert check["ok"] is False
    assert "build/out.txt: in the worktree but ignored by .gitignore:1: `build/`" in str(
        check["output"]
    )
    assert "git add -f" in str(check["output"])
    assert git(repo, "ls-tree", "-r", "--name-only", "conductor/t") == ".gitignore\nREADME.md"


def test_committed_outputs_pass_and_reach_the_branch(repo: Path) -> None:
    write(repo / ".gitignore", "build/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore build/")
    write_workflow(repo, """
        version: 1
        name: t
        tasks:
          A:
            run: "mkdir -p dist/js && echo x > dist/js/a.js && echo y > notes.md"
            outputs: [dist/js/a.js, "dist/**/*.js", dist/, ./notes.md]
          B:
            # the hint works: an ignored output the task commits itself is delivered
            run: "mkdir -p build && echo z > build/z.txt && git add -f build/z.txt && git commit -qm z"
            outputs: [build/z.txt]
    """)  # fmt: skip
    proc = cli(repo, "run", "wf.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tree = git(repo, "ls-tree", "-r", "--name-only", "conductor/t").split()
    assert {"dist/js/a.js", "notes.md", "build/z.txt"} <= set(tree)


# -- the check itself, on a real repository --------------------------------------------


@pytest.fixture
def wt(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "wt", {".gitignore": "*.log\n!keep.log\ncache/\n", "a.txt": "a\n"})
    write(repo / "src" / "m.py", "x = 1\n")
    write(repo / "debug.log", "ignored\n")
    write(repo / "keep.log", "kept by a negation\n")
    write(repo / "cache" / "c.bin", "ignored dir\n")
    write(repo / "loose.txt", "untracked, never committed\n")
    git(repo, "add", "src/m.py", "keep.log")
    git(repo, "commit", "-q", "-m", "more")
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("secret.txt\n")
    write(repo / "secret.txt", "excluded locally\n")
    return repo


def committed(wt: Path) -> Committed:
    return Committed(wt / ".git", git(wt, "rev-parse", "HEAD"))


def test_outputs_in_the_commit_pass(wt: Path) -> None:
    task = Task(id="T", outputs=("a.txt", "src/", "src/*.py", "**/*.py", "keep.log", "*.txt"))
    [res] = run_checks(task, wt, [], ENV, committed(wt))
    assert res.ok, res.output


def test_outputs_missing_from_the_commit_say_why(wt: Path) -> None:
    outputs = ("debug.log", "cache/c.bin", "cache", "secret.txt", "loose.txt", "none.txt", "*.md")
    [res] = run_checks(Task(id="T", outputs=outputs), wt, [], ENV, committed(wt))
    assert not res.ok
    lines = res.output.splitlines()
    assert lines[0] == "missing output(s): none.txt, *.md"
    assert "debug.log: in the worktree but ignored by .gitignore:1: `*.log`" in lines[1]
    assert "cache/c.bin: in the worktree but ignored by .gitignore:3: `cache/`" in lines[2]
    assert "cache: in the worktree but ignored by .gitignore:3: `cache/`" in lines[3]
    assert "secret.txt: in the worktree but ignored by " in lines[4]
    assert "info/exclude:1: `secret.txt`" in lines[4]
    assert "loose.txt: in the worktree but not in the attempt's commit" in lines[5]
    assert "git add -f" in lines[6]


def test_without_a_commit_outputs_are_looked_for_on_disk(wt: Path) -> None:
    [res] = run_checks(Task(id="T", outputs=("debug.log", "loose.txt")), wt, [], ENV)
    assert res.ok


def test_commit_paths_lists_files_and_directories(wt: Path) -> None:
    head = git(wt, "rev-parse", "HEAD")
    everything = {".gitignore", "a.txt", "keep.log", "src", "src/m.py"}
    assert commit_paths(wt / ".git", head) == everything
    assert commit_paths(wt / ".git", head, ["src"]) == {"src", "src/m.py"}


def test_ignore_rules_skip_negations_and_unignored_paths(wt: Path) -> None:
    rules = ignore_rules(wt / ".git", wt, ["debug.log", "keep.log", "loose.txt", "a b.log"])
    assert set(rules) == {"debug.log", "a b.log"}
    assert rules["debug.log"].describe() == ".gitignore:1: `*.log`"
