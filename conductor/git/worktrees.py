"""Worktrees: one per attempt on its own branch, detached ones for group gates, and the
repair of what an interrupted ``git worktree add`` left behind (DESIGN §4)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from conductor.errors import ConductorError, InfraError
from conductor.git import cmd as gitcmd
from conductor.git import refs
from conductor.git.pool import Pooling
from conductor.git.prepare import prepare, unprepared
from conductor.git.repo import real


@dataclass(frozen=True)
class Taken:
    """What ``take_worktree`` handed out: a pooled worktree (``reused``), and whether its
    kept directories still match their key, so `setup` need not run again."""

    reused: bool = False
    setup_kept: bool = False
    key_files: tuple[str, ...] = ()  # what its kept directories are good for (setup_done)
    salt: str = ""


class Worktrees(Pooling):
    """The worktree half of ``Workspace``."""

    def take_worktree(
        self,
        path: Path,
        branch: str,
        start_sha: str,
        *,
        pre_ref: str,
        copy: Sequence[str] = (),
        symlink: Sequence[str] = (),
        keep: Sequence[str] = (),
        key_files: Sequence[str] = (),
        salt: str = "",
    ) -> Taken:
        """An attempt's worktree at ``path`` on a new ``branch`` at ``start_sha``, its
        pre-snapshot ref ``pre_ref`` set, ``copy``/``symlink`` placed: a pooled one when
        there is one (reset to look fresh), else a fresh one. A pooled one keeps the
        ignored directories ``keep`` while the contents of ``key_files`` (and ``salt``,
        the setup commands) are what they were when `setup` made them."""
        path = Path(path).absolute()
        kept: bool | None = None
        # a resumed attempt's own worktree or branch: `add_worktree` continues with them
        if not os.path.lexists(path) and self._ref_now(refs.branch_ref(branch)) is None:
            kept = self._from_pool(path, branch, start_sha, keep, (key_files, salt))
        if kept is None:
            self.add_worktree(path, branch, start_sha)
        self.set_ref(pre_ref, start_sha)
        prepare(self.root, path, copy, symlink)
        return Taken(kept is not None, bool(kept), tuple(key_files), salt)

    def setup_done(self, path: Path, taken: Taken) -> None:
        """`setup` succeeded in ``path``: with `workspace.reuse`, its kept directories
        are good for later attempts while the key files are unchanged."""
        if taken.key_files:
            self._made(Path(path).absolute(), taken.key_files, taken.salt)

    def recycle_worktree(self, path: Path, head: str | None = None) -> None:
        """A finished attempt's worktree (its work committed): back to the pool, or
        removed when the pool is full. ``head`` is its branch's sha when known."""
        if not self.park_worktree(path, head):
            self.remove_worktree(path, force=True)

    def park_worktree(self, path: Path, head: str | None = None) -> bool:
        """Put a finished attempt's worktree in the pool (a few renames, no process);
        False when the pool is full or the worktree is not fit, and it stays where it is."""
        path = Path(path).absolute()
        try:
            return path.is_dir() and self._to_pool(path, head)
        except (OSError, ConductorError):
            return False  # half moved: `open_pool` repairs or discards it on the next start

    def repair_worktrees(self, mine: Collection[str] = ()) -> list[str]:
        """Drop the admin dirs of worktrees whose creation was cut short (kill -9).

        `git worktree add` writes `.git/worktrees/<name>/` file by file; one missing
        `commondir`, `gitdir` or `HEAD` makes every later worktree command fail. Only
        names in ``mine`` or dirs older than a few seconds are touched: a younger one
        may belong to another runner's `worktree add` in progress.
        """
        admin = self.common_dir / "worktrees"
        old = time.time() - 5.0
        broken = [
            d for d in (admin.iterdir() if admin.is_dir() else [])
            if d.is_dir() and not all((d / f).is_file() for f in ("commondir", "gitdir", "HEAD"))
            and (d.name in mine or d.stat().st_mtime < old)
        ]  # fmt: skip
        for d in broken:
            shutil.rmtree(d, ignore_errors=True)
        self.prune_worktrees()
        return [d.name for d in broken]

    def prune_worktrees(self) -> None:
        """Forget registered worktrees whose directories are gone."""
        self._git(["worktree", "prune"])

    def list_worktrees(self) -> list[tuple[Path, str | None]]:
        """(path, branch or None when detached) of every registered worktree, main first."""
        out = self._git(["worktree", "list", "--porcelain", "-z"], c_locale=True)
        return [(path, branch) for path, branch, _ in gitcmd.parse_worktrees(out)]

    def _registered(self, path: Path) -> tuple[Path, str | None] | None:
        want = real(path)
        return next((wt for wt in self.list_worktrees() if real(wt[0]) == want), None)

    def _owned(self, path: Path) -> bool:
        """Inside ``.conductor/``: the only place conductor may delete a stray directory."""
        return real(path).startswith(real(self.state_dir) + os.sep)

    def add_worktree(self, path: Path, branch: str, start_sha: str) -> None:
        """Worktree at ``path`` on a new ``branch`` from ``start_sha``.

        Crash-resume: a worktree already at ``path`` on ``branch`` is kept, a surviving
        branch is reused, and debris of an interrupted add under ``.conductor/`` is cleared.
        """
        path = Path(path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        first = self._run(["worktree", "add", "-b", branch, str(path), start_sha], c_locale=True)
        if first.ok:
            return
        known = self._registered(path)
        if known is not None and (path / ".git").exists():
            if known[1] == branch:
                return
            raise InfraError(f"{path} is already a worktree on {known[1] or 'a detached HEAD'}")
        if known is not None:
            self.prune_worktrees()  # registered, but its directory is gone
        elif path.exists() and self._owned(path):
            shutil.rmtree(path)
        elif path.exists():
            raise first.error()
        if self.rev(refs.branch_ref(branch)) is not None:
            self._git(["worktree", "add", str(path), branch])
        else:
            self._git(["worktree", "add", "-b", branch, str(path), start_sha])

    def add_temp_worktree(self, path: Path, commit: str) -> None:
        """Detached worktree at ``commit`` (group gates); one already at ``path`` is replaced."""
        path = Path(path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        if self._run(["worktree", "add", "--detach", str(path), commit]).ok:
            return
        self.remove_worktree(path, force=True)
        self._git(["worktree", "add", "--detach", str(path), commit])

    def remove_worktree(self, path: Path, force: bool = False) -> None:
        """Remove the worktree at ``path``; already removed is fine.

        Without ``force`` git refuses one with uncommitted or untracked files (prepare()'s
        copies count): after ``commit_all`` pass ``force=True``.
        """
        path = Path(path).absolute()
        flags = ["--force", "--force"] if force else []  # twice: a locked one goes too
        res = self._run(["worktree", "remove", *flags, str(path)], c_locale=True)
        if res.ok:
            return
        if path.exists() and self._registered(path) is not None:
            if not (force and self._owned(path)):
                raise res.error()
            self._discard(path)  # one git cannot read any more (an empty HEAD): by hand
        if path.exists() and force and self._owned(path):
            shutil.rmtree(path)  # a stray directory git no longer knows
        self.prune_worktrees()

    def is_dirty(self, worktree: Path) -> bool:
        """Uncommitted or untracked changes, ignoring what prepare() placed."""
        args = ["--no-optional-locks", "status", "--porcelain", "-z", *unprepared(worktree)]
        return bool(self._git(args, worktree, c_locale=True))
