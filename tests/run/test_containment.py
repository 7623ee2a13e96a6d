"""A hostile agent's git (issue 10): whatever it does to `.git`, HEAD or the refs, the
user's branches, index, working tree and stash stay as they were, the integration branch
holds only conductor's merges, its work is still committed on its attempt branch, and the
attempt fails saying what the agent did."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testing.repos import git, write
from tests.testing.runner import attempt_branch, db_rows, run_json, write_workflow

WORKFLOW = """
version: 1
name: t
defaults: {{retries: 0}}
tasks:
  EVIL:
    run: |
      echo work > work.txt
      {script}
"""

HOSTILE = {
    # without .git, git would walk up into the user's repository and commit onto main
    "rm-git": ("rm -rf .git; git add -A; git commit -qm evil; true", "deleted the worktree's .git"),
    # opening a FIFO for reading waits for a writer: the tamper check must not
    "fifo-git": ("rm -rf .git; mkfifo .git; true", "pointed the worktree's .git at"),
    "repoint-git": (
        'echo "gitdir: $(git rev-parse --git-common-dir)" > .git; git add -A;'
        " git commit -qm evil; true",
        "pointed the worktree's .git at",
    ),
    "switch-branch": ("git checkout -q -b elsewhere; true", "switched the attempt from"),
    "checkout-main": ("git checkout -q main 2>/dev/null; git switch -q --detach; true",
                      "detached HEAD"),
    "force-integration": ("git commit -qam x --allow-empty; git branch -f conductor/t HEAD",
                          "moved the integration branch conductor/t"),
    "update-user-ref": ("git add -A; git commit -qm x; git update-ref refs/heads/main HEAD",
                        "moved refs/heads/main"),
    "move-side-branch": ("git add -A; git commit -qm x; git push -q . HEAD:side; true",
                         "moved refs/heads/side"),
    "move-tag": ("git commit -qm x --allow-empty; git tag -f v1 HEAD >/dev/null; true",
                 "moved refs/tags/v1"),
    "stash": ("echo more >> README.md; git stash -q; true", "pushed onto the stash"),
}


def user_state(repo: Path) -> dict[str, str]:
    """Everything of the user's that must come out byte-identical."""
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)",
               "refs/heads/main", "refs/heads/side", "refs/tags", "refs/stash")  # fmt: skip
    return {
        "refs": refs,
        "head": (repo / ".git" / "HEAD").read_text(),
        "index": (repo / ".git" / "index").read_bytes().hex(),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "stash": git(repo, "stash", "list"),
        "dirty": (repo / "README.md").read_text(),
    }


QUICK = {"rm-git", "fifo-git", "repoint-git", "update-user-ref"}  # the rest run with the slow tests


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=() if c in QUICK else pytest.mark.slow) for c in sorted(HOSTILE)]
)
def test_a_hostile_agent_cannot_reach_beyond_its_attempt(repo: Path, case: str) -> None:
    script, said = HOSTILE[case]
    git(repo, "branch", "side")
    git(repo, "tag", "v1")
    write(repo / "README.md", "the user's unsaved edit\n")  # a dirty tree, staged in part
    git(repo, "add", "README.md")
    write(repo / "notes.txt", "untracked\n")
    write_workflow(repo, WORKFLOW.format(script=script.replace("\n", "\n      ")))
    before = user_state(repo)

    code, events, err = run_json(repo, "wf.yaml")

    assert user_state(repo) == before
    assert code == 1, err
    [failed] = [e for e in events if e["kind"] == "task_failed"]
    assert "reached outside its attempt" in failed["data"]["error"]
    assert said in failed["data"]["error"]
    # the integration branch holds no merge and no commit of the agent
    assert git(repo, "rev-parse", "conductor/t") == git(repo, "rev-parse", "main")
    # the work is committed where it belongs
    assert git(repo, "show", f"{attempt_branch(repo, 'EVIL', 1)}:work.txt") == "work"
    [att] = db_rows(repo, "SELECT post_commit FROM attempts")
    assert att["post_commit"] == git(repo, "rev-parse", attempt_branch(repo, "EVIL", 1))


def test_an_agent_that_keeps_to_its_branch_is_not_bothered(repo: Path) -> None:
    git(repo, "branch", "side")
    write_workflow(repo, WORKFLOW.format(script="git add -A; git commit -qm mine; git log -1 -q"))
    code, events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert not [e for e in events if e["kind"] == "task_warning"]
    assert git(repo, "show", "conductor/t:work.txt") == "work"
