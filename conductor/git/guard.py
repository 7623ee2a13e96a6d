"""Keeping an agent's git inside its attempt: pinning, tamper checks, ref watch and repair.

An agent runs with full access to its worktree, `.git` file included, and every worktree
shares the repository's refs. So conductor never trusts what the agent left behind:

* :class:`Pinned` names the attempt's git directory (from git's own record of the
  worktree, read before the agent starts) and work tree, and every git command conductor
  runs on the attempt passes both explicitly — never through the worktree's `.git`, which
  the agent may have deleted or pointed at the user's repository;
* :func:`tampering` says what the agent did to `.git` and HEAD, :func:`repair` undoes it;
* :class:`RefWatch` snapshots the refs before the agent and, after it, puts back what the
  agent moved that is not its own: the integration branch (conductor's merges are the only
  way it moves), the user's branches, tags and stash, and — when the agent reached the
  user's repository through a repointed `.git` — the user's HEAD and index.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conductor.errors import InfraError
from conductor.git import refs
from conductor.git.merge import _MERGE_LOCK
from conductor.git.repo import Repo
from conductor.git.smallfiles import read_small

STASH = "refs/stash"
WATCHED = ("refs/heads/", "refs/tags/", STASH)
ADMIN_DIR = "worktrees"  # <common dir>/worktrees/<id>: a linked worktree's git directory


@dataclass(frozen=True)
class Pinned:
    """An attempt's git, named explicitly: its git directory and its work tree."""

    git_dir: Path
    work_tree: Path
    branch: str

    def args(self) -> list[str]:
        return ["--git-dir", str(self.git_dir), "--work-tree", str(self.work_tree)]


def read_stripped(path: Path) -> str | None:
    """A small file git keeps (HEAD, gitdir, a loose ref), stripped; None if unreadable."""
    text = read_small(path)  # None: missing, or a directory where a file should be
    return None if text is None else text.strip()


def pin(common_dir: Path, work_tree: Path, branch: str) -> Pinned | None:
    """The attempt's git from git's own record: the admin dir whose ``gitdir`` file names
    ``<work_tree>/.git`` (not the worktree's `.git` file, which the agent can rewrite)."""
    want = str(Path(work_tree).absolute() / ".git")
    admin = Path(common_dir) / ADMIN_DIR
    for d in _admin_guesses(admin, Path(want)):
        if read_stripped(d / "gitdir") == want:
            return Pinned(d, Path(work_tree).absolute(), branch)
    return None


def _admin_guesses(admin: Path, marker: Path) -> Iterator[Path]:
    """Where the worktree's admin dir may be, likeliest first: where its `.git` file
    points (a hint only: the admin dir's own record decides; a pooled worktree's admin dir
    keeps the name of the attempt that first made it), the name git gives it, then all."""
    text = read_stripped(marker) or ""
    hint = Path(text.removeprefix("gitdir:").strip()) if text.startswith("gitdir:") else None
    if hint is not None and hint.parent == admin:
        yield hint
    yield admin / marker.parent.name
    if admin.is_dir():
        yield from admin.iterdir()


def tampering(p: Pinned) -> list[str]:
    """What the agent did to the attempt's `.git` and HEAD, in words; [] when nothing."""
    found = []
    marker = p.work_tree / ".git"
    if marker.is_dir():
        found.append("replaced the worktree's .git file with a directory")
    elif not marker.exists():
        found.append("deleted the worktree's .git")
    else:
        text = read_stripped(marker) or ""
        target = text.removeprefix("gitdir:").strip()
        if not text.startswith("gitdir:") or Path(target) != p.git_dir:
            found.append(f"pointed the worktree's .git at {target or text!r}")
    head = read_stripped(p.git_dir / "HEAD") or ""
    expected = f"ref: {refs.branch_ref(p.branch)}"
    if head != expected:
        where = head.removeprefix("ref: ").removeprefix(refs.HEADS) if head else "nothing"
        what = "detached HEAD" if head and not head.startswith("ref:") else f"branch {where}"
        found.append(f"switched the attempt from {p.branch} to {what}")
    return found


def repair(p: Pinned) -> None:
    """Put the worktree's `.git` file and HEAD back as `git worktree add` made them."""
    marker = p.work_tree / ".git"
    if marker.is_dir() and not marker.is_symlink():
        import shutil

        shutil.rmtree(marker)
    elif marker.is_symlink() or marker.exists():
        marker.unlink()
    marker.write_text(f"gitdir: {p.git_dir}\n", encoding="utf-8")
    (p.git_dir / "HEAD").write_text(f"ref: {refs.branch_ref(p.branch)}\n", encoding="utf-8")


@dataclass(frozen=True)
class Snapshot:
    """The refs an agent must not move, and the user's HEAD and index, before it ran."""

    refs: dict[str, str]
    head: bytes | None
    index: bytes | None


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


class Guarding(Repo):
    """The ref watch, as part of ``Workspace``."""

    def pin_attempt(self, work_tree: Path, branch: str) -> Pinned:
        found = pin(self.common_dir, work_tree, branch)
        if found is None:
            raise InfraError(f"{work_tree} is not a worktree of {self.root}")
        return found

    def _watched(self) -> dict[str, str]:
        """The watched refs (attempt branches left out): read from the ref files, which
        costs no process per attempt; through git when the refs are not plain files."""
        found = read_refs(self.common_dir)
        if found is not None:
            return found
        out = self._git(["for-each-ref", "--format=%(refname) %(objectname)", *WATCHED])
        pairs = (line.rsplit(" ", 1) for line in out.splitlines() if line)
        return {ref: sha for ref, sha in pairs if not _attempt_ref(ref)}

    def _ref_now(self, ref: str) -> str | None:
        loose = read_stripped(self.common_dir / ref)  # a loose ref wins over packed-refs
        if loose is not None and refs.is_sha(loose):  # (with reftable, refs/ is no dir)
            return loose
        found = read_refs(self.common_dir, (ref,), attempts=True)
        return found.get(ref) if found is not None else self.rev(ref)

    def snapshot(self) -> Snapshot:
        """The refs, HEAD and index of the user's repository before an agent runs."""
        common = self.common_dir
        return Snapshot(self._watched(), read_bytes(common / "HEAD"), read_bytes(common / "index"))

    def restore(
        self, before: Snapshot, pinned: Pinned, integration: str, reached_out: bool
    ) -> list[str]:
        """Put back what the agent moved that is not its own; say what, in words.

        The integration branch moves only through conductor's merges: any other position
        is put back. A user's branch, tag or stash is put back when the agent clearly
        moved it: it now holds the attempt's work, it was rewound or rewritten, it was
        deleted, or the agent reached the repository through a repointed `.git` (then the
        user's HEAD and index are restored too). A user's own commit made meanwhile (a
        descendant unrelated to the attempt) is left alone."""
        said: list[str] = []
        if not self._integration_intact(before, integration):
            with _MERGE_LOCK:  # a merge of ours may be moving it right now: ask again
                said = self._restore_integration(before, integration)
        after = self._watched()
        tip = self._ref_now(refs.branch_ref(pinned.branch)) or ""
        for ref in sorted(set(before.refs) | set(after)):
            old, new = before.refs.get(ref), after.get(ref)
            if old == new or not _users(ref, integration):
                continue
            if ref == STASH:
                said += self._drop_agents_stash(new, pinned.branch, reached_out)
            elif old is None:  # created: may be the user's own new branch or tag
                continue
            elif new is None or reached_out or self._moved_by_agent(old, new, tip):
                self._git(["update-ref", "-m", "conductor: put back", ref, old])
                said.append(f"moved {ref} (put back at {old[:12]})")
        if reached_out:
            said += self._restore_files(before)
        return said

    def _integration_intact(self, before: Snapshot, integration: str) -> bool:
        """Where conductor left it, read without the merge lock (every attempt's end would
        otherwise queue behind the merges in progress). The ref moves before ``_heads``
        does, so a merge half done reads as moved, and the locked check decides."""
        ref = refs.branch_ref(integration)
        now = self._ref_now(ref)
        expected = self._heads.get(integration) or before.refs.get(ref)
        return expected is None or now == expected

    def _restore_integration(self, before: Snapshot, integration: str) -> list[str]:
        ref = refs.branch_ref(integration)
        expected = self._heads.get(integration) or before.refs.get(ref)
        now = self._ref_now(ref)
        if expected is None or now == expected:
            return []
        self._git(["update-ref", "-m", "conductor: put back", ref, expected])
        return [f"moved the integration branch {integration} (put back at {expected[:12]})"]

    def _drop_agents_stash(self, new: str | None, branch: str, reached_out: bool) -> list[str]:
        """A stash entry the agent pushed (git names the branch it was made on) is dropped
        the way `git stash drop` does, so the user's stash list reads as before."""
        if new is None:
            return ["dropped an entry of the stash (not restored: git keeps no copy)"]
        subject = self._git(["log", "-1", "--format=%s", new])
        if not reached_out and f" on {branch}:" not in subject:
            return []
        self._git(["reflog", "delete", "--updateref", "--rewrite", f"{STASH}@{{0}}"])
        if not self._git(["reflog", "show", "--format=%H", STASH]).strip():
            self._git(["update-ref", "-d", STASH])  # that was the only entry
        return ["pushed onto the stash (dropped)"]

    def _moved_by_agent(self, old: str, new: str, tip: str) -> bool:
        if not self._is_ancestor(old, new):  # rewound or rewritten
            return True
        return bool(tip) and self._is_ancestor(new, tip)  # now holds the attempt's work

    def _restore_files(self, before: Snapshot) -> list[str]:
        said = []
        for name, saved in (("HEAD", before.head), ("index", before.index)):
            path = self.common_dir / name
            if saved is not None and read_bytes(path) != saved:
                path.write_bytes(saved)
                said.append(f"changed the repository's {name} (put back)")
        return said


def _attempt_ref(ref: str) -> bool:
    branch = refs.branch_of(ref)
    return branch is not None and refs.parse_attempt_branch(branch) is not None


def read_refs(
    common: Path, wanted: tuple[str, ...] = WATCHED, attempts: bool = False
) -> dict[str, str] | None:
    """ref -> sha for the refs under ``wanted`` (prefixes, or whole ref names), read from
    git's files (``packed-refs``, then loose refs, which win), attempt branches left out.
    None for a repository whose refs are not files (reftable): ask git then."""
    if (common / "reftable").exists():
        return None
    out: dict[str, str] = {}
    try:
        packed = (common / "packed-refs").read_text(encoding="utf-8").splitlines()
    except OSError:
        packed = []
    for line in packed:
        sha, _, name = line.partition(" ")
        if line[:1] in ("#", "^") or not name.startswith(wanted):
            continue
        if attempts or not _attempt_ref(name):
            out[name] = sha
    for prefix in wanted:
        base = common / prefix
        files = [base] if base.is_file() else sorted(_loose(base))
        for path in files:
            sha = read_stripped(path) or ""
            if len(sha) in (40, 64) and not path.name.endswith(".lock"):
                out[path.relative_to(common).as_posix()] = sha
    return out


def _loose(base: Path) -> list[Path]:
    found = []
    for top, dirs, names in os.walk(base):
        dirs[:] = [d for d in dirs if not d.endswith(refs.ATTEMPTS_MARK.rstrip("/"))]
        found += [Path(top) / n for n in names]
    return found


def _users(ref: str, integration: str) -> bool:
    """A watched ref that is the user's, not conductor's (integration and attempt branches
    are handled by conductor)."""
    branch = refs.branch_of(ref)
    if branch is None:
        return True  # tags, stash
    return branch != integration and refs.parse_attempt_branch(branch) is None
