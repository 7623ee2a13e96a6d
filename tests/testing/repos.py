"""Real git repositories in temp dirs."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    """A git repository on branch main with one commit holding ``files``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for name, text in (files or {"README.md": "hello\n"}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def attempt_worktrees(repo: Path) -> list[str]:
    """Worktrees besides the main one and those waiting in conductor's pool
    (``.conductor/worktrees/.pool/``): what an attempt left behind."""
    out = git(repo, "worktree", "list", "--porcelain")
    paths = [line[len("worktree ") :] for line in out.splitlines() if line.startswith("worktree ")]
    return [p for p in paths[1:] if "/.conductor/worktrees/.pool/" not in p]


def pooled_worktrees(repo: Path) -> list[Path]:
    """The worktrees waiting in conductor's pool, each checked to be sound: registered
    with git at that path, on a detached HEAD (holding no branch), locked as the pool
    locks it (so no `git worktree prune` takes it), and no slot left half taken."""
    home = repo / ".conductor" / "worktrees" / ".pool"
    slots = sorted(home.iterdir()) if home.is_dir() else []
    listed = git(repo, "worktree", "list", "--porcelain").split("\n\n")
    for slot in slots:
        assert not slot.name.startswith("."), f"a slot left half taken: {slot.name}"
        entry = next((e for e in listed if e.startswith(f"worktree {slot}\n")), "")
        assert entry, f"{slot} is not a registered worktree"
        assert "detached" in entry and "prunable" not in entry, entry
        assert "\nlocked conductor: a pooled worktree" in entry, entry
    return slots


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def live_merges(repo: Path, task: str, branch: str = "conductor/t") -> list[str]:
    """Merges of ``task`` on ``branch``'s first-parent line that no later commit reverted
    (``Conductor-Revert``), newest first: read with git directly, an oracle independent of
    conductor's own reading of the same log."""
    fmt = ("%H %P%x1f%(trailers:key=Conductor-Task,valueonly,separator=%x20)"
           "%x1f%(trailers:key=Conductor-Revert,valueonly,separator=%x20)")  # fmt: skip
    log = git(repo, "log", "-z", "--first-parent", f"--format={fmt}", branch)
    merges, reverted = [], set()
    for record in filter(None, log.split("\0")):
        head, tasks, reverts = record.strip("\n").split("\x1f")
        reverted.update(reverts.split())
        sha, *parents = head.split()
        if len(parents) > 1 and tasks.strip() == task:
            merges.append(sha)
    return [m for m in merges if m not in reverted]
