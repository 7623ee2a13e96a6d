"""What an attempt's commit changed, read off `git add --verbose` and `git commit` instead
of a `diff-tree` after them: always equal to ``diff_summary``, and read off only when exact.

Each case is an attempt as the engine makes one: a worktree at the integration head with
prepared files, the index marked before the agent, the agent's doings (files, modes,
links, odd names, its own `git add`, `git commit`, `git status`), then ``commit_work``.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conductor.git.refs import attempt_branch
from conductor.git.workspace import Committed, Workspace
from tests.testing.repos import git, make_repo, write

INTEGRATION = "conductor/sum"
NAMES = ["a.txt", "dir/b.txt", "sp ace.txt", "it's.txt", "ünï/çödé.txt", "tab\there",
         "new\nline", 'dq"uote', "deep/er/c.txt", "bin.dat", "run.sh", "link"]  # fmt: skip
TEXTS = ["", "one\n", "one\ntwo\n", "a\nb\nc\nd\n", "no newline", "\0\1\2binary", "hello\n"]
AGENT_COMMIT = ("-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qam")
_counter = itertools.count()


def base_repo(root: Path) -> Workspace:
    files = {"a.txt": "a\nb\nc\nd\n", "dir/b.txt": "hello\n", "sp ace.txt": "one\n",
             "it's.txt": "q\n", "ünï/çödé.txt": "u\n", "deep/er/c.txt": "one\ntwo\n",
             "run.sh": "echo\n", ".gitignore": "*.log\n"}  # fmt: skip
    repo = make_repo(root, files)
    (repo / "bin.dat").write_bytes(b"\0\1\2\3")
    (repo / "run.sh").chmod(0o755)
    os.symlink("a.txt", repo / "link")
    (repo / ".env").write_text("SECRET=1\n")  # untracked: copied into each worktree
    (repo / "shared").mkdir()
    git(repo, "add", "bin.dat", "run.sh", "link")
    git(repo, "commit", "-q", "-m", "more")
    ws = Workspace(repo)
    ws.ensure_state_dir()
    return ws


def open_attempt(ws: Workspace) -> tuple[Path, str, str]:
    """A worktree on a new attempt branch at the integration head, prepared."""
    head = ws.ensure_branch(INTEGRATION, "main")
    n = next(_counter)
    path = ws.state_dir / "worktrees" / "run" / f"T{n}-1"
    branch = attempt_branch(INTEGRATION, "r1", f"T{n}", 1)
    ws.add_worktree(path, branch, head)
    ws.prepare(path, copy=[".env"], symlink=["shared"])
    return path, branch, head


def commit(ws: Workspace, path: Path, branch: str, head: str,
           agent: Callable[[Path], None]) -> Committed:  # fmt: skip
    pinned = ws.pin_attempt(path, branch)
    mark = ws.index_mark(pinned, head)  # as the attempt does, before setup and the agent
    agent(path)
    done = ws.commit_work(path, "conductor: T", "", {"Conductor-Task": "T"}, pinned,
                          start=head, mark=mark)  # fmt: skip
    assert done.sha == git(path, "rev-parse", "HEAD")
    assert (done.paths, done.insertions, done.deletions) == ws.diff_summary(head, done.sha)
    return done


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return base_repo(tmp_path / "repo")


def run_case(ws: Workspace, agent: Callable[[Path], None]) -> Committed:
    path, branch, head = open_attempt(ws)
    return commit(ws, path, branch, head, agent)


# ---- the agent's doings -------------------------------------------------------------


def put(path: Path, rel: str, text: str) -> None:
    target = path / rel
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        return  # a directory stays (its files are other names)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text.encode())


def drop(path: Path, rel: str) -> None:
    target = path / rel
    if target.is_symlink() or target.is_file():
        target.unlink()


def chmod(path: Path, rel: str) -> None:
    target = path / rel
    if target.is_file() and not target.is_symlink():
        target.chmod(target.stat().st_mode ^ 0o111)


def link(path: Path, rel: str, to: str) -> None:
    drop(path, rel)
    if not (path / rel).exists():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(to, path / rel)


def move(path: Path, src: str, dst: str) -> None:
    if (path / src).is_file() and not (path / dst).exists() and src != dst:
        (path / dst).parent.mkdir(parents=True, exist_ok=True)
        os.rename(path / src, path / dst)


def git_in(path: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=path, capture_output=True, check=False)


def as_dir(path: Path, rel: str) -> None:
    """A tracked file replaced by a directory of the same name."""
    drop(path, rel)
    put(path, f"{rel}/inner.txt", "inside\n")


def nested_repo(path: Path, rel: str) -> None:
    target = path / f"{rel}-repo"
    target.mkdir(parents=True, exist_ok=True)
    git_in(target, "init", "-q")
    write(target / "f.txt", "x\n")
    git_in(target, "-c", "user.name=a", "-c", "user.email=a@b", "add", "f.txt")
    git_in(target, *AGENT_COMMIT, "x")


name = st.sampled_from(NAMES + [f"new/{n}" for n in NAMES[:4]] + [".env", "x.log"])
text = st.sampled_from(TEXTS)
Op = Callable[[Path], None]
ops: st.SearchStrategy[Op] = st.one_of(
    st.builds(lambda r, t: lambda p: put(p, r, t), name, text),
    st.builds(lambda r: lambda p: drop(p, r), name),
    st.builds(lambda r: lambda p: chmod(p, r), name),
    st.builds(lambda r, t: lambda p: link(p, r, t), name, name),
    st.builds(lambda a, b: lambda p: move(p, a, b), name, name),
    st.builds(lambda r: lambda p: as_dir(p, r), name),
    st.builds(lambda r: lambda p: git_in(p, "add", "--", r), name),
    st.builds(lambda r: lambda p: git_in(p, "rm", "-q", "--cached", "--", r), name),
    st.builds(lambda r: lambda p: git_in(p, "add", "-N", "--", r), name),
    st.builds(lambda r: lambda p: nested_repo(p, r), st.sampled_from(["sub", "dir/sub"])),
    st.just(lambda p: git_in(p, "status")),
    st.just(lambda p: git_in(p, *AGENT_COMMIT, "agent's own")),
    st.just(lambda p: git_in(p, "reset", "-q")),
)


def test_the_summary_equals_diff_tree_whatever_the_agent_did(tmp_path: Path) -> None:
    ws = base_repo(tmp_path / "repo")
    folded: list[bool] = []

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(st.lists(ops, max_size=6))
    def case(agent_ops: list[Op]) -> None:
        def agent(p: Path) -> None:
            for op in agent_ops:
                op(p)

        folded.append(run_case(ws, agent).folded)

    case()
    assert any(folded) and not all(folded)  # both ways were taken, and both were exact


# ---- when it is read off, and when git is asked ----------------------------------------


def edits(p: Path) -> None:
    put(p, "a.txt", "a\nB\nc\n")  # 1 insertion, 2 deletions
    put(p, "new/file.txt", "n\n")
    drop(p, "dir/b.txt")
    (p / "bin.dat").write_bytes(b"\0\x09")
    chmod(p, "run.sh")
    link(p, "link", "sp ace.txt")
    put(p, "sp ace.txt", "one\n")  # rewritten, unchanged: not a change
    put(p, "ünï/çödé.txt", "v\n")
    put(p, "it's.txt", "r\n")
    put(p, ".env", "SECRET=2\n")  # prepared: never committed


@pytest.mark.parametrize(
    "agent",
    [
        edits,
        lambda p: None,  # nothing: an empty commit
        lambda p: (edits(p), git_in(p, "status")),  # status rewrote the index, same tree
        lambda p: as_dir(p, "a.txt"),
    ],
    ids=["edits", "nothing", "status", "file-to-dir"],
)
def test_read_off_the_add_and_the_commit_when_exact(ws: Workspace, agent: Op) -> None:
    done = run_case(ws, agent)
    assert done.folded


def test_the_edits_case_lists_every_kind_of_change(ws: Workspace) -> None:
    done = run_case(ws, edits)
    assert done.paths == ["a.txt", "bin.dat", "dir/b.txt", "it's.txt", "link", "new/file.txt",
                          "run.sh", "ünï/çödé.txt"]  # fmt: skip
    assert (done.insertions, done.deletions) == (5, 6)


@pytest.mark.parametrize(
    "agent",
    [
        lambda p: (put(p, "a.txt", "x\n"), git_in(p, "add", "a.txt")),  # staged by the agent
        lambda p: (
            put(p, "a.txt", "x\n"),
            git_in(p, "add", "a.txt"),
            put(p, "a.txt", "a\nb\nc\nd\n"),
        ),
        lambda p: (put(p, "a.txt", "x\n"), git_in(p, *AGENT_COMMIT, "own")),
        # `git reset` leaves the same entries but drops the cache tree: git cannot tell
        lambda p: (git_in(p, "add", "a.txt"), edits(p), git_in(p, "reset", "-q")),
        lambda p: move(p, "a.txt", "renamed.txt"),  # the commit's summary counts a rename once
        lambda p: put(p, "new\nline", "x\n"),  # a name the add prints on two lines
        lambda p: nested_repo(p, "sub"),  # the add names it "sub-repo/"
    ],
    ids=[
        "staged",
        "staged-then-reverted",
        "agent-commit",
        "staged-then-reset",
        "rename",
        "newline-name",
        "embedded-repo",
    ],
)
def test_git_is_asked_when_the_output_cannot_tell(ws: Workspace, agent: Op) -> None:
    assert not run_case(ws, agent).folded


def test_counts_ignore_the_users_diff_algorithm(ws: Workspace) -> None:
    """patience and histogram count some changes differently from diff-tree."""
    put(ws.root, "alg.txt", "c\na\nx\nb\nb\nx\na\nx\n")
    git(ws.root, "add", "alg.txt")
    git(ws.root, "commit", "-qm", "alg")
    git(ws.root, "config", "diff.algorithm", "histogram")
    done = run_case(ws, lambda p: put(p, "alg.txt", "c\nb\nx\nx\nc\nx\nc\na\n"))
    assert done.folded and (done.insertions, done.deletions) == (4, 4)


def test_without_a_mark_git_is_asked(ws: Workspace) -> None:
    path, branch, head = open_attempt(ws)
    put(path, "a.txt", "z\n")
    pinned = ws.pin_attempt(path, branch)
    done = ws.commit_work(path, "s", "", {}, pinned, start=head, mark=None)
    assert not done.folded and done.paths == ["a.txt"]
    assert ws.commit_all(path, "again", "", {}, pinned) == git(path, "rev-parse", "HEAD")


def test_sha256_repositories_are_read_off_too(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    made = subprocess.run(["git", "init", "-q", "--object-format=sha256", "-b", "main"],
                          cwd=repo, check=False)  # fmt: skip
    if made.returncode != 0:
        pytest.skip("this git makes no SHA-256 repositories")
    write(repo / "a.txt", "a\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    ws = Workspace(repo)
    ws.ensure_state_dir()

    def agent(p: Path) -> None:
        put(p, "a.txt", "b\n")
        put(p, "n.txt", "n\n")

    done = run_case(ws, agent)
    assert done.folded and len(done.sha) == 64 and done.paths == ["a.txt", "n.txt"]
