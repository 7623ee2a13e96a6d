"""The worktree pool (issue 16): a reused worktree is indistinguishable from a fresh one,
kept directories live exactly as long as their key, and a crash or a hostile attempt
never hands out a wrong worktree."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from conductor.git import pool as poolmod
from conductor.git.workspace import Workspace
from conductor.git.worktrees import Taken
from tests.testing.repos import git, make_repo, write

BRANCH = "conductor/t.attempts/r1"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    repo = make_repo(tmp_path / "repo", {
        "README.md": "hello\n", "src/a.py": "a = 1\n", "src/b.py": "b = 2\n",
        ".gitignore": "*.log\nnode_modules/\n", "package-lock.json": '{"v": 1}\n',
    })  # fmt: skip
    w = Workspace(repo)
    w.ensure_state_dir()
    w.pool_slots = 4
    return w


def take(ws: Workspace, name: str, start: str = "main", **kw: Any) -> tuple[Path, Taken]:
    path = ws.state_dir / "worktrees" / "r1" / name
    sha = git(ws.root, "rev-parse", start)
    taken = ws.take_worktree(path, f"{BRANCH}/{name}", sha, pre_ref=f"refs/conductor/r1/{name}/pre",
                             **kw)  # fmt: skip
    return path, taken


def finish(ws: Workspace, path: Path) -> None:
    """What an attempt's end does: commit what is left, then park the worktree."""
    pinned = ws.pin_attempt(path, git(path, "symbolic-ref", "--short", "HEAD"))
    ws.commit_all(path, "attempt", "", {}, pinned)
    write(pinned.git_dir / "index.lock", "")  # a git the attempt's end cut short
    assert ws.park_worktree(path)


def hostile_attempt(path: Path) -> None:
    """Everything an agent may leave: untracked, ignored, staged and assume-unchanged
    files, an unwritable directory, a lock, a per-worktree config, refs and state."""
    write(path / "untracked.txt", "u\n")
    write(path / "debug.log", "ignored\n")
    write(path / "deep/er/x.log", "ignored too\n")
    write(path / "src/a.py", "a = 'changed'\n")
    (path / "src" / "b.py").unlink()
    write(path / "staged.txt", "s\n")
    git(path, "add", "staged.txt")
    git(path, "update-index", "--assume-unchanged", "README.md")
    write(path / "README.md", "changed behind git's back\n")
    write(path / "locked/inside.txt", "x\n")
    os.chmod(path / "locked", 0o500)
    git(path, "config", "extensions.worktreeConfig", "true")
    git(path, "config", "--worktree", "core.hooksPath", "/nowhere")
    git(path, "worktree", "lock", str(path))
    git(path, "update-ref", "refs/bisect/bad", "HEAD")
    admin = Path(git(path, "rev-parse", "--absolute-git-dir"))
    write(admin / "MERGE_HEAD", git(path, "rev-parse", "HEAD") + "\n")


def view(path: Path, branch: str) -> dict[str, object]:
    """What an agent can see of its worktree, its own branch name made neutral."""

    def run(*args: str) -> str:
        return git(path, *args).replace(branch, "BRANCH")

    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if ".git" not in p.parts)
    return {
        "status": run("status", "--porcelain", "--ignored", "--untracked-files=all"),
        "files": files,
        "contents": {f: (path / f).read_text() for f in files if (path / f).is_file()},
        "head": run("symbolic-ref", "HEAD"),
        "at": run("rev-parse", "HEAD"),
        "config": run("config", "--list", "--show-scope"),
        "hooks": run("rev-parse", "--git-path", "hooks").replace(str(path), "WT"),
        "flags": run("ls-files", "-v"),
        "refs": run("for-each-ref", "--format=%(refname)", "refs/bisect", "refs/worktree"),
        "state": sorted(p.name for p in Path(run("rev-parse", "--absolute-git-dir")).iterdir()
                        if p.name not in ("gitdir", "commondir", "HEAD", "index", "logs")),
        "locked": "locked" in git(path, "worktree", "list", "--porcelain").split(str(path))[1]
        .split("\n\n")[0],
    }  # fmt: skip


def test_a_reused_worktree_looks_exactly_like_a_fresh_one(ws: Workspace) -> None:
    first, taken = take(ws, "A-1")
    assert not taken.reused
    hostile_attempt(first)
    finish(ws, first)
    assert not first.exists() and len(ws._slots()) == 1

    reused, taken = take(ws, "B-1", copy=[".env"])
    assert taken.reused
    ws.pool_slots = 0  # the same attempt on a fresh worktree, for comparison
    fresh, taken = take(ws, "C-1", copy=[".env"])
    assert not taken.reused
    seen = view(reused, f"{BRANCH}/B-1")
    assert seen == view(fresh, f"{BRANCH}/C-1")
    assert seen["head"] == "refs/heads/BRANCH" and not seen["locked"]
    assert (reused / "src" / "b.py").read_text() == "b = 2\n"
    assert git(ws.root, "rev-parse", "refs/conductor/r1/B-1/pre") == git(
        ws.root, "rev-parse", "main"
    )


def test_kept_directories_live_while_their_key_is_unchanged(ws: Workspace) -> None:
    reuse = {"keep": ["node_modules"], "key_files": ["package-lock.json"], "salt": "npm ci"}
    path, taken = take(ws, "A-1", **reuse)
    assert not taken.setup_kept
    write(path / "node_modules/dep/index.js", "made by setup\n")
    ws.setup_done(path, taken)
    write(path / "scratch.log", "not kept\n")
    finish(ws, path)

    path, taken = take(ws, "B-1", **reuse)
    assert taken.reused and taken.setup_kept
    assert (path / "node_modules/dep/index.js").read_text() == "made by setup\n"
    assert not (path / "scratch.log").exists()
    write(path / "package-lock.json", '{"v": 2}\n')  # the attempt changes the key
    finish(ws, path)

    start = git(ws.root, "rev-parse", f"{BRANCH}/B-1")  # a start where the key differs
    path, taken = take(ws, "C-1", start=start, **reuse)
    assert taken.reused and not taken.setup_kept
    assert not (path / "node_modules").exists()
    ws.setup_done(path, taken)
    finish(ws, path)
    path, taken = take(ws, "D-1", start="main", **{**reuse, "salt": "npm install"})
    assert not taken.setup_kept  # other setup commands


def test_the_pool_is_bounded_and_a_full_pool_removes(ws: Workspace) -> None:
    ws.pool_slots = 1
    a, _ = take(ws, "A-1")
    b, _ = take(ws, "B-1")
    finish(ws, a)
    pinned = ws.pin_attempt(b, f"{BRANCH}/B-1")
    ws.commit_all(b, "attempt", "", {}, pinned)
    assert not ws.park_worktree(b)  # full: the caller removes it
    ws.recycle_worktree(b)
    assert not b.exists() and len(ws._slots()) == 1
    assert str(b) not in git(ws.root, "worktree", "list")


def test_a_slot_that_cannot_be_reset_is_discarded_for_a_fresh_worktree(ws: Workspace) -> None:
    path, _ = take(ws, "A-1")
    finish(ws, path)
    slot = ws._slots()[0]
    (slot / ".git").write_text("gitdir: /elsewhere\n")  # repointed after it was parked
    path, taken = take(ws, "B-1")
    assert not taken.reused
    assert ws._slots() == [] and not slot.exists()
    assert git(path, "status", "--porcelain") == ""


def test_open_pool_repairs_what_a_crash_left(ws: Workspace) -> None:
    paths = [take(ws, f"T{i}-1")[0] for i in range(4)]
    for p in paths:
        finish(ws, p)
    a, b, c, d = ws._slots()
    admin_a = Path(git(a, "rev-parse", "--absolute-git-dir"))
    where_it_was = ws.state_dir.absolute() / "worktrees" / "r1" / "T0-1" / ".git"
    (admin_a / "gitdir").write_text(f"{where_it_was}\n")  # killed between rename and record
    (admin_a / "locked").write_text("moving\n")
    os.rename(b, b.with_name(f"{poolmod.CLAIM}999999-{b.name}"))  # a dead runner's claim
    admin_c = Path(git(c, "rev-parse", "--absolute-git-dir"))
    (admin_c / "HEAD").write_text(f"ref: refs/heads/{BRANCH}/T2-1\n")  # not yet detached
    (d / ".git").unlink()  # not a worktree any more

    dropped = ws.open_pool(4)
    assert sorted(dropped) == sorted([f"{poolmod.CLAIM}999999-{b.name}", d.name])
    assert [s.name for s in ws._slots()] == [a.name, c.name]
    ws.prune_worktrees()  # git itself now agrees with the pool
    listed = git(ws.root, "worktree", "list", "--porcelain")
    assert str(a) in listed and str(c) in listed
    # slots at rest are locked, with a reason that says why, so no `git worktree prune`
    # takes them (the view of a taken one checks it is unlocked again)
    assert listed.count("locked conductor: a pooled worktree") == 2
    assert not (admin_c / "HEAD").read_text().startswith("ref:")  # no branch held
    for i in range(2):
        path, taken = take(ws, f"N{i}-1")
        assert taken.reused
        assert git(path, "status", "--porcelain", "--ignored") == ""


def test_a_smaller_run_trims_an_earlier_runs_larger_pool(ws: Workspace) -> None:
    for p in [take(ws, f"T{i}-1")[0] for i in range(4)]:
        finish(ws, p)
    assert len(ws._slots()) == 4
    assert len(ws.open_pool(2)) == 2
    assert len(ws._slots()) == 2
    ws.prune_worktrees()
    assert git(ws.root, "worktree", "list", "--porcelain").count("worktree ") == 3


def test_threads_never_share_a_slot(ws: Workspace) -> None:
    for p in [take(ws, f"P{i}-1")[0] for i in range(2)]:
        finish(ws, p)
    got: list[tuple[Path, bool]] = []

    def one(i: int) -> None:
        path, taken = take(ws, f"Q{i}-1")
        got.append((path, taken.reused))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(reused for _, reused in got) == 2
    for path, _ in got:
        branch = git(path, "symbolic-ref", "--short", "HEAD")
        assert branch == f"{BRANCH}/{path.name}"
        assert git(path, "status", "--porcelain") == ""


def test_an_index_with_flags_is_not_trusted(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a": "1\n", "b": "2\n"})
    index = repo / ".git" / "index"
    assert poolmod.index_is_plain(index)
    git(repo, "update-index", "--skip-worktree", "b")
    assert not poolmod.index_is_plain(index)
    git(repo, "update-index", "--no-skip-worktree", "b")
    git(repo, "update-index", "--assume-unchanged", "a")
    assert not poolmod.index_is_plain(index)
    assert poolmod.index_is_plain(tmp_path / "missing")
    write(tmp_path / "junk", "not an index")
    assert not poolmod.index_is_plain(tmp_path / "junk")


def test_a_worktree_swapped_for_a_link_is_never_pooled(ws: Workspace) -> None:
    path, _ = take(ws, "A-1")
    pinned = ws.pin_attempt(path, f"{BRANCH}/A-1")
    ws.commit_all(path, "attempt", "", {}, pinned)
    moved = path.with_name("elsewhere")
    path.rename(moved)
    path.symlink_to(moved)  # git's records still match through the link
    assert not ws.park_worktree(path)  # a slot must be a directory, never a link
    assert ws._slots() == [] and path.is_symlink()


def test_a_planted_slot_never_captures_the_users_own_worktree(
    ws: Workspace, tmp_path: Path
) -> None:
    mine = tmp_path / "my-other-checkout"
    git(ws.root, "worktree", "add", "-q", "-b", "feature", str(mine))
    admin = Path(git(mine, "rev-parse", "--absolute-git-dir"))
    planted = ws.pool_dir / "evil"
    write(planted / ".git", f"gitdir: {admin}\n")
    assert planted.name in ws.open_pool(4)  # discarded, not adopted
    assert (admin / "gitdir").read_text().strip() == str(mine / ".git")
    assert git(mine, "symbolic-ref", "--short", "HEAD") == "feature"
    _, taken = take(ws, "A-1")
    assert not taken.reused
    assert admin.is_dir() and git(mine, "status", "--porcelain") == ""


def test_a_head_left_empty_by_a_kill_still_parks_or_goes(ws: Workspace) -> None:
    a, _ = take(ws, "A-1")
    b, _ = take(ws, "B-1")
    for path in (a, b):
        pinned = ws.pin_attempt(path, git(path, "symbolic-ref", "--short", "HEAD"))
        ws.commit_all(path, "attempt", "", {}, pinned)
        (pinned.git_dir / "HEAD").write_text("")  # killed between truncate and write
    ws.recycle_worktree(a)  # its reflog still says where it was
    assert len(ws._slots()) == 1 and not a.exists()
    admin_b = ws.pin_attempt(b, f"{BRANCH}/B-1").git_dir
    (admin_b / "logs" / "HEAD").unlink()  # and nothing else says it either
    ws.recycle_worktree(b)
    assert not b.exists() and not admin_b.exists()
    assert str(b) not in git(ws.root, "worktree", "list", "--porcelain")
