"""The git room's answers for rollback and clean, and the small helpers that moved into it
(a new repository, exact ref deletion, pruning, the identity fallback, `git --version`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor.errors import InfraError
from conductor.git import cmd as gitcmd
from conductor.git import env as gitenv
from conductor.git import refs
from conductor.git.workspace import LoggedCommit, Workspace
from tests.testing.repos import git, write

INTEGRATION = "conductor/demo"


@pytest.fixture
def ws(repo: Path) -> Workspace:
    w = Workspace.discover(repo)
    w.ensure_state_dir()
    return w


def attempt(ws: Workspace, run: str, task: str, n: int = 1, text: str = "x\n") -> str:
    """An attempt's branch with one commit on top of the integration head; its sha."""
    head = ws.ensure_branch(INTEGRATION, "main")
    path = ws.state_dir / "worktrees" / run / f"{task}-{n}"
    ws.add_worktree(path, refs.attempt_branch(INTEGRATION, "r1", task, n), head)
    write(path / f"{task}.txt", text)
    sha = ws.commit_all(path, task, "", {"Conductor-Run": run, "Conductor-Task": task})
    ws.remove_worktree(path, force=True)
    return sha


def test_first_parent_log_reads_each_commits_run(ws: Workspace, repo: Path) -> None:
    start = ws.ensure_branch(INTEGRATION, "main")
    m1 = ws.merge(INTEGRATION, attempt(ws, "r1", "T1"), "T1", {"Conductor-Run": "r1"})
    m2 = ws.merge(INTEGRATION, attempt(ws, "r2", "T2"), "T2", {"Conductor-Run": "r2"})
    foreign = git(repo, "commit-tree", f"{m2}^{{tree}}", "-p", m2, "-m", "by hand")
    git(repo, "update-ref", refs.branch_ref(INTEGRATION), foreign)
    log = ws.first_parent_log(foreign, start)
    # newest first, first parents only (the attempts' own commits are not listed)
    assert log == [LoggedCommit(foreign, None), LoggedCommit(m2, "r2"), LoggedCommit(m1, "r1")]
    assert ws.first_parent_log(m1, m1) == []


def test_ref_shas_lists_refs_under_a_prefix_with_their_shas(ws: Workspace) -> None:
    head = ws.ensure_branch(INTEGRATION, "main")
    ws.set_ref(refs.pre_ref("r1", "T1", 1), head)
    ws.set_ref(refs.pre_ref("r10", "T1", 1), head)
    assert ws.ref_shas(refs.run_prefix("r1")) == {refs.pre_ref("r1", "T1", 1): head}
    assert set(ws.ref_shas(refs.NAMESPACE)) == {
        refs.pre_ref("r1", "T1", 1),
        refs.pre_ref("r10", "T1", 1),
    }
    assert ws.ref_shas(refs.ROLLBACK_NS) == {}


def test_unmerged_attempts_are_those_holding_work_the_integration_branch_lacks(
    ws: Workspace,
) -> None:
    merged = attempt(ws, "r1", "T1")
    attempt(ws, "r1", "T2")
    ws.merge(INTEGRATION, merged, "T1", {})
    t2 = refs.branch_ref(refs.attempt_branch(INTEGRATION, "r1", "T2", 1))
    assert ws.unmerged_attempts(INTEGRATION) == {t2}
    # without its integration branch nothing of it is merged
    ws.delete_branch(INTEGRATION)
    t1 = refs.branch_ref(refs.attempt_branch(INTEGRATION, "r1", "T1", 1))
    assert ws.unmerged_attempts(INTEGRATION) == {t1, t2}
    assert ws.unmerged_attempts("conductor/other") == set()


def test_delete_exact_deletes_only_what_is_still_where_it_was_seen(ws: Workspace) -> None:
    head = ws.ensure_branch(INTEGRATION, "main")
    keep, gone = refs.pre_ref("r1", "T1", 1), refs.pre_ref("r1", "T2", 1)
    ws.set_ref(keep, head)
    ws.set_ref(gone, head)
    ws.delete_exact({gone: head})
    assert ws.ref_shas(refs.NAMESPACE) == {keep: head}
    moved = attempt(ws, "r1", "T3")
    with pytest.raises(InfraError, match="none deleted"):
        ws.delete_exact({keep: moved})  # it is at head, not where the caller saw it
    assert ws.rev(keep) == head
    with pytest.raises(ValueError, match="namespace"):
        ws.delete_exact({"refs/tags/v1": head})
    ws.delete_exact({})


def test_prune_worktrees_forgets_a_worktree_whose_directory_is_gone(ws: Workspace) -> None:
    head = ws.ensure_branch(INTEGRATION, "main")
    path = ws.state_dir / "worktrees" / "r1" / "T1-1"
    ws.add_worktree(path, refs.attempt_branch(INTEGRATION, "r1", "T1", 1), head)
    for entry in sorted(path.rglob("*"), reverse=True):
        entry.unlink() if entry.is_file() or entry.is_symlink() else entry.rmdir()
    path.rmdir()
    assert len(ws.list_worktrees()) == 2
    ws.prune_worktrees()
    assert ws.list_worktrees() == [(ws.root, "main")]


def test_init_makes_a_repository_whose_first_commit_lands_on_the_branch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AUTHOR", "COMMITTER"):  # a machine without any git identity
        monkeypatch.delenv(f"GIT_{var}_NAME")
        monkeypatch.delenv(f"GIT_{var}_EMAIL")
    monkeypatch.delenv("EMAIL", raising=False)
    root = tmp_path / "new"
    root.mkdir()
    ws = Workspace.init(root, "trunk")
    write(root / "a.txt", "a\n")
    sha = ws.commit_all(root, "first", "", {})
    assert git(root, "symbolic-ref", "HEAD") == "refs/heads/trunk"
    assert ws.rev(refs.branch_ref("trunk")) == sha
    assert git(root, "log", "--format=%an <%ae>|%s", "trunk") == (
        f"{gitcmd.FALLBACK_NAME} <{gitcmd.FALLBACK_EMAIL}>|first"
    )
    assert git(root, "status", "--porcelain") == ""


def test_identity_fallback_only_for_what_is_missing(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert gitcmd.identity_args(repo) == ()  # the test environment names author and committer
    monkeypatch.delenv("GIT_AUTHOR_NAME")
    assert gitcmd.identity_args(repo) == ("-c", f"user.name={gitcmd.FALLBACK_NAME}")
    git(repo, "config", "user.name", "Someone")
    assert gitcmd.identity_args(repo) == ()
    monkeypatch.delenv("GIT_COMMITTER_EMAIL")
    monkeypatch.delenv("EMAIL", raising=False)
    assert gitcmd.identity_args(repo) == ("-c", f"user.email={gitcmd.FALLBACK_EMAIL}")


def test_git_version_is_asked_through_the_workspace(ws: Workspace) -> None:
    assert ws.git_version().startswith("git version ")


def test_clean_env_is_importable_without_the_git_runner() -> None:
    leaked = {"GIT_DIR": "/elsewhere/.git", "GIT_INDEX_FILE": "/tmp/i", "HOME": "/home/x"}
    assert gitenv.clean_env(leaked) == {"HOME": "/home/x", "GIT_TERMINAL_PROMPT": "0"}
    assert gitcmd.clean_env is gitenv.clean_env  # one definition while callers move over
