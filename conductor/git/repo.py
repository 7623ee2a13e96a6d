"""One repository and the way conductor runs git in it: what every part of ``Workspace``
shares (the runner with its hooks-off flags and race retries, the identity fallback,
finding the repository, reading revisions, the compare-and-swap ``update-ref``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from conductor.errors import InfraError, UserError
from conductor.git import cmd as gitcmd
from conductor.git import looseref, refs
from conductor.state.layout import STATE_DIR_NAME

_RACE_PAUSES = (0.01, 0.02, 0.05, 0.1, 0.2)
_UNSHARED = ("", "false", "umask", "0")  # core.sharedRepository values that share nothing
_R = TypeVar("_R", bound="Repo")


def real(path: Path) -> str:
    return os.path.realpath(path)


class Repo:
    """One repository, addressed by the root of its main worktree."""

    def __init__(self, root: Path, *, common_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.state_dir = self.root / STATE_DIR_NAME
        self._common_dir = common_dir
        self._ident: tuple[str, ...] | None = None
        self._who: str | None = None  # see _reflog_who
        self._heads: dict[str, str] = {}  # branch -> head after this process's last merge

    def _run(self, args: Sequence[str], cwd: Path | None = None, **kw: Any) -> gitcmd.GitResult:
        result = gitcmd.run([*gitcmd.NO_HOOKS, *args], cwd or self.root, **kw)
        for pause in _RACE_PAUSES:
            if result.ok or "failed to read .git/worktrees/" not in result.stderr:
                break
            # git 2.39 reads every worktree's admin dir while another `worktree add` or
            # `remove` is half way through writing or deleting it: a transient failure
            time.sleep(pause)
            result = gitcmd.run([*gitcmd.NO_HOOKS, *args], cwd or self.root, **kw)
        return result

    def _git(self, args: Sequence[str], cwd: Path | None = None, **kw: Any) -> str:
        result = self._run(args, cwd, **kw)
        if not result.ok:
            raise result.error()
        return result.stdout

    def _identity(self) -> tuple[str, ...]:
        """``-c user.*`` fallbacks, asked once per repository (a git process each time)."""
        if self._ident is None:
            self._ident = gitcmd.identity_args(self.root)
        return self._ident

    def _reflog_who(self) -> str | None:
        """``Name <email>`` as git writes it in reflog entries (its committer ident, with
        the identity fallbacks), from one `git var -l` per repository. None leaves ref
        updates to git: a shared repository (git sets group permissions on what it
        writes) or a committer date fixed by the environment."""
        if self._who is None:
            res = self._run([*self._identity(), "var", "-l"], c_locale=True)
            found = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
            ident = found.get("GIT_COMMITTER_IDENT", "").rsplit(" ", 2)[0]
            shared = found.get("core.sharedrepository", "").lower() not in _UNSHARED
            fixed = "GIT_COMMITTER_DATE" in os.environ
            self._who = "" if not res.ok or shared or fixed or "<" not in ident else ident
        return self._who or None

    # ---- the repository -------------------------------------------------------------

    @classmethod
    def discover(cls: type[_R], path: Path) -> _R:
        """The repository holding ``path`` (file or dir), rooted at its MAIN worktree."""
        start = Path(path).absolute()
        while not start.exists() and start != start.parent:
            start = start.parent
        if not start.is_dir():
            start = start.parent
        args = ["--show-toplevel", "--git-dir", "--git-common-dir"]
        res = gitcmd.run(["rev-parse", "--path-format=absolute", *args], start, c_locale=True)
        if not res.ok:
            raise UserError(
                f"{path} is not inside a git repository",
                hint="run conductor inside a git working tree (or `git init` one first)",
            )
        top, git_dir, common = res.stdout.splitlines()[:3]
        root = Path(top)
        if git_dir != common:
            # A linked worktree (an agent's, say): state lives with the main worktree, which
            # `git worktree list` lists first. A bare main repository has none: stay here.
            out = gitcmd.git(["worktree", "list", "--porcelain", "-z"], start, c_locale=True)
            main = gitcmd.parse_worktrees(out)[0]
            root = root if main[2] else main[0]
        return cls(root, common_dir=Path(common))

    @classmethod
    def init(cls: type[_R], root: Path, branch: str) -> _R:
        """A new, empty repository at ``root`` whose first commit will go on ``branch``.

        ``symbolic-ref`` rather than ``init -b``: the flag is newer than some gits we run on.
        """
        gitcmd.git(["init", "-q"], root)
        gitcmd.git(["symbolic-ref", "HEAD", refs.branch_ref(branch)], root)
        return cls(root)

    def git_version(self) -> str:
        """``git --version`` (for the runner's debug log)."""
        return self._git(["--version"])

    @property
    def common_dir(self) -> Path:
        """The git dir all worktrees share (the main worktree's ``.git``)."""
        if self._common_dir is None:
            out = self._git(["rev-parse", "--path-format=absolute", "--git-common-dir"])
            self._common_dir = Path(out)
        return self._common_dir

    # ---- reading revisions ----------------------------------------------------------

    def set_ref(self, ref: str, sha: str) -> None:
        """Point ``ref`` (e.g. ``refs.pre_ref(run, task, n)``) at ``sha`` as git's files
        backend does (``looseref.put``), which costs no process on an attempt's path;
        through `update-ref` where that cannot be done by hand."""
        if not looseref.put(self.common_dir, ref, sha):
            self._git(["update-ref", ref, sha])

    def rev(self, ref: str) -> str | None:
        """Full sha of the commit ``ref`` names, or None."""
        if ref.startswith("-"):
            return None
        res = self._run(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], c_locale=True)
        return res.stdout.strip() if res.ok else None

    def revs(self, refs: list[str]) -> dict[str, str | None]:
        """Full shas of the commits ``refs`` name (None when absent), in one git process."""
        lines = "".join(f"{r}^{{commit}}\n" for r in refs)
        res = self._run(["cat-file", "--batch-check=%(objectname)"], input=lines, c_locale=True)
        out = res.stdout.splitlines()
        return {r: (None if o.endswith(" missing") else o) for r, o in zip(refs, out, strict=False)}

    def tree_of(self, rev: str) -> str:
        return self._git(["rev-parse", "--verify", f"{rev}^{{tree}}"], c_locale=True)

    def _head(self, branch: str) -> str:
        head = self.rev(refs.branch_ref(branch))
        if head is None:
            raise InfraError(f"branch {branch} does not exist in {self.root}")
        return head

    def _is_ancestor(self, commit: str, head: str) -> bool:
        res = self._run(["merge-base", "--is-ancestor", commit, head], c_locale=True)
        if res.returncode in (0, 1):
            return res.returncode == 0
        raise res.error()

    def _cas(self, branch: str, new: str, old: str, reason: str) -> bool:
        """update-ref as compare-and-swap: False when ``branch`` is no longer at ``old``."""
        ref = refs.branch_ref(branch)
        who = self._reflog_who()
        moved = None if who is None else looseref.swap(self.common_dir, ref, new, old, who, reason)
        if moved is not None:
            return moved
        res = self._run(["update-ref", "-m", reason, ref, new, old])
        if res.ok:
            return True
        if self.rev(ref) != old:
            return False
        raise res.error()
