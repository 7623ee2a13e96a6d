"""An agent stopped in the middle of its own `git add` or `git commit` leaves git's lock
files behind; the attempt's work must still be committed and merged."""

from __future__ import annotations

from pathlib import Path

from tests.testing.repos import git, make_repo
from tests.testing.runner import run_json, write_workflow


def test_locks_an_agent_left_in_its_git_do_not_lose_its_work(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    write_workflow(repo, """
        version: 1
        name: t
        tasks:
          A:
            run: >-
              echo work > a.txt &&
              touch "$(git rev-parse --git-dir)/index.lock" &&
              touch "$(git rev-parse --git-common-dir)/refs/heads/$(git symbolic-ref --short HEAD).lock"
    """)
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert git(repo, "show", "conductor/t:a.txt") == "work"
