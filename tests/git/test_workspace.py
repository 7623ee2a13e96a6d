"""The git layer against real repositories: worktrees, commits, merges, cleanup, safety."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conductor.errors import GitError, MergeConflict, UserError
from conductor.git import cmd as gitcmd
from conductor.git.refs import attempt_branch
from conductor.git.workspace import BranchMoved, Workspace
from tests.testing.repos import git, make_repo, write

INTEGRATION = "conductor/demo"


def trailers_of(cwd: Path, rev: str) -> dict[str, str]:
    out = git(cwd, "log", "-1", "--format=%(trailers:only,unfold)", rev)
    return dict(line.split(": ", 1) for line in out.splitlines() if line)


def user_state(repo: Path) -> tuple[str, ...]:
    """What a user would notice: their branch, HEAD, status, files and index bytes."""
    status = subprocess.run(
        ["git", "--no-optional-locks", "status", "--porcelain", "-uall"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    files = tuple((p.name, p.read_text()) for p in sorted(repo.glob("*.txt")))
    index = (repo / ".git" / "index").read_bytes().hex()
    head = git(repo, "symbolic-ref", "HEAD")
    return (git(repo, "rev-parse", "main"), head, status, repr(files), index)


def start_attempt(ws: Workspace, task: str, attempt: int = 1) -> tuple[Path, str]:
    """What the engine does before an agent runs: branch, worktree and pre-snapshot."""
    head = ws.ensure_branch(INTEGRATION, "main")
    path = ws.state_dir / "worktrees" / "run 1" / f"{task}-{attempt}"
    ws.add_worktree(path, attempt_branch(INTEGRATION, "r1", task, attempt), head)
    ws.set_ref(f"refs/conductor/run1/{task}/{attempt}/pre", head)
    return path, head


def finish(ws: Workspace, path: Path, task: str) -> str:
    trailers = {"Conductor-Run": "run1", "Conductor-Task": task, "Conductor-Status": "ok"}
    return ws.commit_all(path, f"{task}: work", "done", trailers)


def merge(ws: Workspace, task: str, sha: str) -> str:
    trailers = {"Conductor-Run": "run1", "Conductor-Task": task}
    return ws.merge(INTEGRATION, sha, f"Merge {task}", trailers)


@pytest.fixture
def ws(repo: Path) -> Workspace:
    w = Workspace.discover(repo)
    w.ensure_state_dir()
    return w


def test_discover_finds_main_root_from_subdir_file_and_linked_worktree(repo: Path) -> None:
    write(repo / "src" / "deep" / "x.py", "")
    assert Workspace.discover(repo / "src" / "deep").root == repo
    assert Workspace.discover(repo / "src" / "deep" / "x.py").root == repo
    linked = repo.parent / "linked wt"
    git(repo, "worktree", "add", "-q", str(linked), "-b", "side")
    found = Workspace.discover(linked)
    assert found.root == repo
    assert found.state_dir == repo / ".conductor"


def test_discover_outside_a_repository_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is not inside a git repository") as info:
        Workspace.discover(tmp_path / "nowhere")
    assert info.value.hint


def test_state_dir_is_excluded_once(repo: Path) -> None:
    ws = Workspace.discover(repo)
    ws.ensure_state_dir()
    ws.ensure_state_dir()
    write(ws.state_dir / "state.db", "x")
    exclude = (repo / ".git" / "info" / "exclude").read_text()
    assert exclude.count(".conductor/") == 1
    assert git(repo, "status", "--porcelain") == ""


def test_ensure_branch_creates_once_and_never_moves(ws: Workspace, repo: Path) -> None:
    first = ws.ensure_branch(INTEGRATION, "main")
    assert first == git(repo, "rev-parse", "main")
    write(repo / "more.txt", "x")
    git(repo, "add", "more.txt")
    git(repo, "commit", "-qm", "more")
    assert ws.ensure_branch(INTEGRATION, "main") == first
    assert ws.rev(f"refs/heads/{INTEGRATION}") == first
    assert ws.rev("no-such-ref") is None
    with pytest.raises(UserError):
        ws.ensure_branch("conductor/other", "no-such-ref")


def test_commit_all_keeps_agent_commits_and_adds_trailers(ws: Workspace) -> None:
    path, pre = start_attempt(ws, "T1")
    write(path / "agent.txt", "committed by the agent\n")
    git(path, "add", "agent.txt")
    git(path, "commit", "-qm", "agent's own commit")
    write(path / "left over.txt", "uncommitted\n")
    (path / "README.md").unlink()
    assert ws.is_dirty(path)
    sha = ws.commit_all(path, "T1: schema", "# not a comment\nbody", {"Conductor-Task": "T1"})
    assert sha == git(path, "rev-parse", "HEAD")
    assert not ws.is_dirty(path)
    assert trailers_of(path, sha) == {"Conductor-Task": "T1"}
    assert "# not a comment" in git(path, "log", "-1", "--format=%B")
    assert git(path, "log", "--format=%s", f"{pre}..HEAD").splitlines() == [
        "T1: schema",
        "agent's own commit",
    ]
    assert ws.changed_files(pre, sha) == ["README.md", "agent.txt", "left over.txt"]
    assert ws.rev("refs/conductor/run1/T1/1/pre") == pre
    # A failed attempt with nothing to show is still committed: no work is ever lost.
    assert ws.commit_all(path, "T1: nothing", "", {}) != sha


def test_commit_works_without_any_identity(
    ws: Workspace, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AUTHOR", "COMMITTER"):
        monkeypatch.delenv(f"GIT_{var}_NAME")
        monkeypatch.delenv(f"GIT_{var}_EMAIL")
    monkeypatch.delenv("EMAIL", raising=False)
    fresh = Workspace(repo)
    path, _ = start_attempt(fresh, "T1")
    write(path / "a.txt", "a")
    sha = fresh.commit_all(path, "T1", "", {"Conductor-Task": "T1"})
    assert git(repo, "log", "-1", "--format=%an <%ae>", sha) == "conductor <conductor@localhost>"
    assert merge(fresh, "T1", sha)


def test_user_hooks_never_run(ws: Workspace, repo: Path) -> None:
    hooks = repo / ".git" / "hooks"
    marker = repo.parent / "hook-ran"
    for name in ("pre-commit", "commit-msg", "post-commit", "post-checkout"):
        write(hooks / name, f"#!/bin/sh\necho {name} >> '{marker}'\nexit 1\n").chmod(0o755)
    path, _ = start_attempt(ws, "T1")
    write(path / "a.txt", "a")
    sha = ws.commit_all(path, "T1", "", {})
    merge(ws, "T1", sha)
    assert not marker.exists()


def test_merges_without_touching_the_users_branch_index_or_files(ws: Workspace, repo: Path) -> None:
    write(repo / "README.md", "staged change\n")
    git(repo, "add", "README.md")
    write(repo / "dirty.txt", "uncommitted user work\n")
    before = user_state(repo)

    p1, _ = start_attempt(ws, "T1")
    p10, _ = start_attempt(ws, "T10")
    p2, _ = start_attempt(ws, "T2")
    write(p1 / "shared.txt", "from T1\n")
    write(p10 / "t10.txt", "from T10\n")
    write(p2 / "shared.txt", "from T2\n")
    c1, c10, c2 = finish(ws, p1, "T1"), finish(ws, p10, "T10"), finish(ws, p2, "T2")

    m1 = merge(ws, "T1", c1)
    m10 = merge(ws, "T10", c10)
    assert git(repo, "rev-list", "--parents", "-n1", m10).split()[1:] == [m1, c10]
    assert trailers_of(repo, m1) == {"Conductor-Run": "run1", "Conductor-Task": "T1"}
    assert git(repo, "show", f"{m10}:shared.txt") == "from T1"
    with pytest.raises(MergeConflict) as conflict:
        merge(ws, "T2", c2)
    assert conflict.value.paths == ["shared.txt"]
    assert "shared.txt" in conflict.value.output
    assert ws.rev(f"refs/heads/{INTEGRATION}") == m10  # the failed merge left no trace

    assert ws.find_merge(INTEGRATION, "run1", "T1") == m1
    assert ws.find_merge(INTEGRATION, "run1", "T10") == m10
    assert ws.find_merge(INTEGRATION, "run1", "T2") is None
    assert ws.find_merge(INTEGRATION, "run2", "T1") is None
    assert ws.is_merged(INTEGRATION, c1) and not ws.is_merged(INTEGRATION, c2)
    assert not ws.is_merged("conductor/missing", c1)
    grep = git(repo, "log", "--merges", INTEGRATION, "--format=%H", "--grep=Conductor-Task: T1$")
    assert grep.splitlines() == [m1]
    assert user_state(repo) == before


def test_parallel_attempts_merge_one_at_a_time_in_a_path_with_spaces(tmp_path: Path) -> None:
    ws = Workspace.discover(make_repo(tmp_path / "my repo"))
    ws.ensure_state_dir()
    tasks = [f"T{i}" for i in range(6)]
    paths = {t: start_attempt(ws, t)[0] for t in tasks}

    def work(task: str) -> str:
        write(paths[task] / f"{task}.txt", task)
        return merge(ws, task, finish(ws, paths[task], task))

    with ThreadPoolExecutor(len(tasks)) as pool:
        merges = list(pool.map(work, tasks))
    chain = git(ws.root, "rev-list", "--first-parent", "--merges", INTEGRATION).splitlines()
    assert sorted(chain) == sorted(merges)
    assert [ws.find_merge(INTEGRATION, "run1", t) for t in tasks] == merges
    files = git(ws.root, "ls-tree", "--name-only", INTEGRATION).splitlines()
    assert files == ["README.md", *(f"{t}.txt" for t in tasks)]


def test_merge_with_a_stale_expected_head_refuses(ws: Workspace) -> None:
    p1, start = start_attempt(ws, "T1")
    p2, _ = start_attempt(ws, "T2")
    write(p1 / "a.txt", "a")
    write(p2 / "b.txt", "b")
    c1, c2 = finish(ws, p1, "T1"), finish(ws, p2, "T2")
    m1 = ws.merge(INTEGRATION, c1, "Merge T1", {}, expected_head=start)
    with pytest.raises(BranchMoved):
        ws.merge(INTEGRATION, c2, "Merge T2", {}, expected_head=start)
    assert ws.rev(f"refs/heads/{INTEGRATION}") == m1
    with pytest.raises(BranchMoved):
        ws.update_branch(INTEGRATION, c2, start)
    assert ws.rollback_branch(INTEGRATION, start) == m1
    assert ws.rev(f"refs/heads/{INTEGRATION}") == start


def test_revert_merge_undoes_exactly_one_task(ws: Workspace, repo: Path) -> None:
    p1, _ = start_attempt(ws, "T1")
    p2, _ = start_attempt(ws, "T2")
    write(p1 / "one.txt", "1\n")
    (p1 / "README.md").write_text("hello from T1\n")
    write(p2 / "two.txt", "2\n")
    m1 = merge(ws, "T1", finish(ws, p1, "T1"))
    merge(ws, "T2", finish(ws, p2, "T2"))
    new = ws.revert_merge(INTEGRATION, m1, "Revert T1", {"Conductor-Revert": "T1"})
    assert ws.rev(f"refs/heads/{INTEGRATION}") == new
    assert git(repo, "ls-tree", "--name-only", new).splitlines() == ["README.md", "two.txt"]
    assert git(repo, "show", f"{new}:README.md") == "hello"
    assert trailers_of(repo, new) == {"Conductor-Revert": "T1"}
    assert ws.find_merge(INTEGRATION, "run1", "T1") == m1  # history is kept, not rewritten
    with pytest.raises(UserError):
        ws.revert_merge("main", m1, "Revert", {})


def test_cleanup_leaves_no_worktrees_branches_or_refs(ws: Workspace, repo: Path) -> None:
    path, head = start_attempt(ws, "T1")
    gate = ws.state_dir / "gates" / "g 1"
    ws.add_temp_worktree(gate, head)
    ws.add_temp_worktree(gate, head)  # resume: replaced, not an error
    write(path / "untracked.txt", "x")
    with pytest.raises(GitError):
        ws.remove_worktree(path)  # dirty: refused without force
    ws.remove_worktree(path, force=True)
    ws.remove_worktree(path, force=True)  # already gone: fine
    ws.remove_worktree(gate)
    ws.delete_branch(attempt_branch(INTEGRATION, "r1", "T1", 1))
    ws.delete_branch(attempt_branch(INTEGRATION, "r1", "T1", 1))
    ws.set_ref("refs/conductor/run10/T1/1/pre", head)
    assert ws.delete_refs("refs/conductor/run1") == ["refs/conductor/run1/T1/1/pre"]
    assert ws.list_worktrees() == [(repo, "main")]
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/conductor/run1") == ""
    assert ws.delete_refs("refs/conductor/run10/") == ["refs/conductor/run10/T1/1/pre"]
    assert git(repo, "branch", "--list", "conductor/*").split() == [INTEGRATION]
    with pytest.raises(ValueError):
        ws.delete_refs("refs/heads/main")


def test_add_worktree_is_idempotent_for_crash_resume(ws: Workspace) -> None:
    path, head = start_attempt(ws, "T1")
    branch = attempt_branch(INTEGRATION, "r1", "T1", 1)
    write(path / "work.txt", "in progress")
    ws.add_worktree(path, branch, head)  # already there: kept as is
    assert (path / "work.txt").exists()
    ws.remove_worktree(path, force=True)
    ws.add_worktree(path, branch, head)  # the branch survived: reused
    assert ws.list_worktrees()[-1] == (path, branch)


def test_leaked_git_environment_does_not_misdirect(
    ws: Workspace, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = user_state(repo)
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "bogus.git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "bogus-index"))
    monkeypatch.setenv("GIT_WORK_TREE", str(tmp_path))
    found = Workspace.discover(repo)
    path, _ = start_attempt(found, "T1")
    write(path / "a.txt", "a")
    sha = merge(found, "T1", finish(found, path, "T1"))
    assert found.changed_files("main", sha) == ["a.txt"]
    assert "GIT_DIR" not in gitcmd.clean_env(os.environ)
    assert gitcmd.clean_env(os.environ)["GIT_TERMINAL_PROMPT"] == "0"
    assert not (tmp_path / "bogus-index").exists()
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    monkeypatch.delenv("GIT_WORK_TREE")
    assert user_state(repo) == before


def test_prepare_copies_untracked_files_and_symlinks_shared_dirs(ws: Workspace, repo: Path) -> None:
    write(repo / ".env", "SECRET=1\n")
    write(repo / "config" / "local.toml", "x = 1\n")
    write(repo / "config" / "other.toml", "y = 2\n")
    write(repo / "README.md", "user's edit, not for the worktree\n")
    write(repo / "node_modules" / "pkg" / "index.js", "module.exports = 1\n")
    write(repo / ".worktreeinclude", "# local settings\nconfig/*.toml\nmissing.txt\n")
    path, pre = start_attempt(ws, "T1")
    ws.prepare(path, copy=[".env", "README.md", "absent"], symlink=["node_modules", "nope"])
    ws.prepare(path, copy=[".env"], symlink=["node_modules"])  # resume: no error
    assert (path / ".env").read_text() == "SECRET=1\n"
    assert (path / "config" / "other.toml").read_text() == "y = 2\n"
    assert (path / "README.md").read_text() == "hello\n"  # tracked: never overwritten
    link = path / "node_modules"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert (link / "pkg" / "index.js").read_text() == "module.exports = 1\n"
    assert not ws.is_dirty(path)
    write(path / "real.txt", "agent output")
    sha = ws.commit_all(path, "T1", "", {})
    assert ws.changed_files(pre, sha) == ["real.txt"]  # copies and links never committed
    assert ws.diffstat(pre, sha) == (1, 1, 0)


def test_changed_files_and_diffstat_cover_deletions_binaries_and_spaces(
    ws: Workspace,
) -> None:
    path, pre = start_attempt(ws, "T1")
    (path / "README.md").unlink()
    write(path / "dir with space" / "new file.txt", "a\nb\n")
    (path / "blob.bin").write_bytes(b"\0\1\2")
    sha = ws.commit_all(path, "T1", "", {})
    assert ws.changed_files(pre, sha) == ["README.md", "blob.bin", "dir with space/new file.txt"]
    assert ws.diffstat(pre, sha) == (3, 2, 1)
    assert ws.tree_of(sha) == git(path, "rev-parse", "HEAD^{tree}")


def test_attempt_branches_coexist_with_the_integration_branch(ws: Workspace) -> None:
    start_attempt(ws, "T1", 1)
    start_attempt(ws, "T1", 2)
    assert [b for _, b in ws.list_worktrees()][1:] == [
        attempt_branch(INTEGRATION, "r1", "T1", 1),
        attempt_branch(INTEGRATION, "r1", "T1", 2),
    ]


def test_git_errors_carry_argv_and_output(tmp_path: Path) -> None:
    with pytest.raises(GitError) as info:
        gitcmd.git(["rev-parse", "--verify", "nope"], tmp_path)
    assert info.value.argv[:2] == ["git", "rev-parse"]
    assert info.value.returncode != 0
    assert not gitcmd.git_ok(["rev-parse", "HEAD"], tmp_path)
