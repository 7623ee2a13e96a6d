"""The integration branch moved by hand, as git's files backend moves it: the same ref file,
the same reflog entry, the same refusals; and left to git wherever that is not exact."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conductor.errors import GitError
from conductor.git import looseref
from conductor.git.workspace import Workspace
from tests.testing.repos import git

REF = "refs/heads/conductor/t"


def commits(repo: Path, n: int) -> list[str]:
    out = []
    for i in range(n):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"c{i}")
        out.append(git(repo, "rev-parse", "HEAD"))
    return out


def who(repo: Path) -> str:
    return git(repo, "var", "GIT_COMMITTER_IDENT").rsplit(" ", 2)[0]


def masked(line: str) -> str:
    return re.sub(r"> \d+ [+-]\d{4}\t", "> TS\t", line)


def test_a_swap_writes_what_update_ref_writes(repo: Path) -> None:
    a, b, c = commits(repo, 3)
    git(repo, "branch", "conductor/t", a)
    common = repo / ".git"
    message = "conductor:  merge  T1 (the  title)"
    assert looseref.swap(common, REF, b, a, who(repo), message) is True
    git(repo, "update-ref", "-m", message, REF, c, b)  # git's own entry, for comparison
    assert git(repo, "rev-parse", "conductor/t") == c
    ours, gits = (common / "logs" / REF).read_text().splitlines()[-2:]
    assert masked(ours).replace(f"{a} {b}", "OLD NEW") == masked(gits).replace(f"{b} {c}", "OLD NEW")
    assert git(repo, "reflog", "-2", "--format=%gs", "conductor/t").splitlines() == [
        "conductor: merge T1 (the title)"
    ] * 2
    assert not (common / f"{REF}.lock").exists()
    git(repo, "fsck", "--no-progress")


def test_a_swap_from_a_value_the_ref_no_longer_holds_changes_nothing(repo: Path) -> None:
    a, b, c = commits(repo, 3)
    git(repo, "branch", "conductor/t", c)
    log = repo / ".git" / "logs" / REF
    before = log.read_text()
    assert looseref.swap(repo / ".git", REF, b, a, who(repo), "m") is False
    assert git(repo, "rev-parse", "conductor/t") == c and log.read_text() == before
    assert not (repo / ".git" / f"{REF}.lock").exists()


@pytest.mark.parametrize("case", ["packed", "no-reflog", "head-names-it", "locked"])
def test_what_is_not_exact_by_hand_is_left_to_git(repo: Path, case: str) -> None:
    a, b = commits(repo, 2)
    git(repo, "branch", "conductor/t", a)
    common = repo / ".git"
    if case == "packed":
        git(repo, "pack-refs", "--all")
    elif case == "no-reflog":
        (common / "logs" / REF).unlink()
    elif case == "head-names-it":
        git(repo, "symbolic-ref", "HEAD", REF)
    else:
        (common / f"{REF}.lock").write_text("")
    assert looseref.swap(common, REF, b, a, who(repo), "m") is None
    assert git(repo, "rev-parse", "conductor/t") == a
    assert (common / f"{REF}.lock").exists() == (case == "locked")


def test_merges_move_the_branch_without_update_ref_and_log_like_it(repo: Path) -> None:
    ws = Workspace.discover(repo)
    a, b = commits(repo, 2)
    git(repo, "branch", "conductor/t", a)
    git(repo, "branch", "work", b)
    merged = ws.merge("conductor/t", "work", "conductor: merge T1", {"Conductor-Task": "T1"})
    assert git(repo, "rev-parse", "conductor/t") == merged
    assert git(repo, "reflog", "-1", "--format=%gs %gn <%ge>", "conductor/t") == (
        f"conductor: conductor: merge T1 {who(repo)}"
    )


def test_a_shared_repository_or_a_fixed_date_leaves_ref_updates_to_git(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Workspace.discover(repo)._reflog_who() == who(repo)
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")
    assert Workspace.discover(repo)._reflog_who() is None
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    git(repo, "config", "core.sharedRepository", "group")
    assert Workspace.discover(repo)._reflog_who() is None


def test_a_finished_runs_refs_are_deleted_by_hand_and_packed_ones_by_git(repo: Path) -> None:
    """What `git update-ref --stdin` deleting them leaves: no ref, no reflog, no empty
    directory below the namespace; a packed ref goes too (through git)."""
    ws = Workspace.discover(repo)
    (a,) = commits(repo, 1)
    git(repo, "update-ref", "refs/conductor/r1/T9/1/pre", a)
    git(repo, "pack-refs", "--all")  # this one is now only in packed-refs: git's to delete
    for i in range(3):
        ws.set_ref(f"refs/conductor/r1/T{i}/1/pre", a)
        git(repo, "branch", f"conductor/t.attempts/r1/T{i}/1", a)
    ws.set_ref("refs/conductor/r2/T0/1/pre", a)  # another run's: untouched
    assert (repo / ".git" / "refs" / "conductor" / "r1" / "T0" / "1" / "pre").is_file()
    gone = [f"refs/conductor/r1/T{i}/1/pre" for i in (0, 1, 2, 9)]
    assert ws.delete_refs("refs/conductor/r1/") == gone
    ws.delete_branches([f"conductor/t.attempts/r1/T{i}/1" for i in range(3)])
    left = git(repo, "for-each-ref", "--format=%(refname)").splitlines()
    assert left == ["refs/conductor/r2/T0/1/pre", "refs/heads/main"]
    common = repo / ".git"
    assert not (common / "refs" / "conductor" / "r1").exists()
    assert not (common / "refs" / "heads" / "conductor").exists()
    assert not (common / "logs" / "refs" / "heads" / "conductor").exists()
    assert (common / "refs" / "heads").is_dir() and (common / "refs" / "conductor").is_dir()


def test_a_ref_someone_else_has_locked_is_left_to_git_and_the_lock_to_them(repo: Path) -> None:
    """Setting a pre-snapshot ref deleted a `.lock` another writer held, then moved the
    ref under it; now git is asked, refuses, and the lock stays."""
    ws = Workspace.discover(repo)
    (a,) = commits(repo, 1)
    ref = "refs/conductor/r1/T0/1/pre"
    ws.set_ref(ref, a)
    assert git(repo, "rev-parse", ref) == a
    lock = repo / ".git" / f"{ref}.lock"
    lock.write_text("")
    with pytest.raises(GitError):
        ws.set_ref(ref, a)
    assert lock.exists()
