"""The attempt guard's pieces on real repositories: reading refs without git, pinning."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from conductor.git import refs
from conductor.git.guard import pin, read_refs, repair, tampering
from conductor.git.workspace import Workspace
from tests.testing.repos import git


def for_each_ref(repo: Path) -> dict[str, str]:
    out = git(repo, "for-each-ref", "--format=%(refname) %(objectname)",
              "refs/heads/", "refs/tags/", "refs/stash")  # fmt: skip
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


def test_reading_ref_files_agrees_with_git_for_packed_and_loose_refs(repo: Path) -> None:
    git(repo, "branch", "side")
    git(repo, "tag", "v1")
    git(repo, "pack-refs", "--all")  # side, v1 and main now live in packed-refs
    git(repo, "commit", "-q", "--allow-empty", "-m", "two")  # main loose again, newer
    git(repo, "branch", "feature/x")
    attempt = refs.attempt_branch("conductor/t", "r1", "T", 1)
    git(repo, "branch", attempt)
    (repo / "f").write_text("x")
    git(repo, "stash", "-u", "-q")
    expected = {r: s for r, s in for_each_ref(repo).items() if ".attempts/" not in r}
    assert read_refs(repo / ".git") == expected
    one = read_refs(repo / ".git", (refs.branch_ref(attempt),), attempts=True)
    assert one == {refs.branch_ref(attempt): git(repo, "rev-parse", attempt)}


def test_an_attempt_is_pinned_from_gits_record_and_repaired_after_tampering(repo: Path) -> None:
    ws = Workspace.discover(repo)
    wt = repo / ".conductor" / "worktrees" / "r1" / "T-1"
    branch = refs.attempt_branch("conductor/t", "r1", "T", 1)
    ws.add_worktree(wt, branch, git(repo, "rev-parse", "HEAD"))
    pinned = pin(ws.common_dir, wt, branch)
    assert pinned is not None and pinned.git_dir.parent == repo / ".git" / "worktrees"
    assert tampering(pinned) == []

    (wt / ".git").write_text(f"gitdir: {repo / '.git'}\n")  # pointed at the user's repo
    assert pin(ws.common_dir, wt, branch) == pinned  # found without trusting .git
    assert [t.split(" at ")[0] for t in tampering(pinned)] == ["pointed the worktree's .git"]
    repair(pinned)
    assert tampering(pinned) == []
    assert git(wt, "symbolic-ref", "HEAD") == refs.branch_ref(branch)


def test_a_moved_worktree_is_pinned_by_its_own_record_whatever_its_git_file_says(
    repo: Path,
) -> None:
    """A pooled worktree keeps the admin dir of the attempt that made it (as `git worktree
    move` does): found through its `.git` file, a hint that is checked against git's own
    record, never trusted: pointed at another worktree's admin dir, the right one is found."""
    ws = Workspace.discover(repo)
    head = git(repo, "rev-parse", "HEAD")
    base = repo / ".conductor" / "worktrees" / "r1"
    ws.add_worktree(base / "A-1", refs.attempt_branch("conductor/t", "r1", "A", 1), head)
    ws.add_worktree(base / "B-1", refs.attempt_branch("conductor/t", "r1", "B", 1), head)
    git(repo, "worktree", "move", str(base / "A-1"), str(base / "C-9"))
    branch = refs.attempt_branch("conductor/t", "r1", "A", 1)
    pinned = pin(ws.common_dir, base / "C-9", branch)
    assert pinned is not None and pinned.git_dir == repo / ".git" / "worktrees" / "A-1"

    (base / "C-9" / ".git").write_text(f"gitdir: {repo / '.git' / 'worktrees' / 'B-1'}\n")
    assert pin(ws.common_dir, base / "C-9", branch) == pinned


def test_a_fifo_put_where_the_git_file_was_is_tampering_not_a_hang(repo: Path) -> None:
    """Opening a FIFO for reading waits for a writer: an agent that swapped its `.git`
    file for one would have hung the runner's tamper check, and the run, for ever."""
    ws = Workspace.discover(repo)
    wt = repo / ".conductor" / "worktrees" / "r1" / "T-1"
    branch = refs.attempt_branch("conductor/t", "r1", "T", 1)
    ws.add_worktree(wt, branch, git(repo, "rev-parse", "HEAD"))
    pinned = pin(ws.common_dir, wt, branch)
    assert pinned is not None
    (wt / ".git").unlink()
    os.mkfifo(wt / ".git")
    found: list[list[str]] = []
    checker = threading.Thread(target=lambda: found.append(tampering(pinned)), daemon=True)
    checker.start()
    checker.join(timeout=10)
    assert found == [["pointed the worktree's .git at ''"]]
    repair(pinned)
    assert tampering(pinned) == []
