"""The git model (DESIGN §4): integration branch, worktree per attempt, commits, merges.

Only this module (through ``gitcmd``) runs git. Invariants:

* The user's branches, working tree and index are never touched: everything conductor
  creates lives under ``.conductor/``, ``refs/heads/conductor/...`` and ``refs/conductor/...``,
  and merges need no working tree (``merge-tree --write-tree`` + ``commit-tree`` + a
  compare-and-swap ``update-ref``).
* No user hook runs for conductor's git calls (``core.hooksPath=/dev/null``): hooks are for
  humans, and a slow or failing one must not decide whether an agent's work is kept.
* An operation costs one or two git processes in the common case.

Crash-resume: ``ensure_state_dir``, ``ensure_branch``, ``add_worktree``, ``add_temp_worktree``,
``set_ref``, ``prepare``, ``remove_worktree``, ``delete_branch`` and ``delete_refs`` may simply
be repeated. ``commit_all``, ``merge`` and ``revert_merge`` make a new commit each time: on
resume ask ``find_merge`` / ``is_merged`` first.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from conductor.errors import InfraError, MergeConflict, UserError
from conductor.git import cmd as gitcmd
from conductor.git.cmd import ere_escape, format_message

STATE_DIR_NAME = ".conductor"
WORKTREEINCLUDE = ".worktreeinclude"
FALLBACK_NAME = "conductor"
FALLBACK_EMAIL = "conductor@localhost"
# In the attempt's private git dir (not its tree): what prepare() placed, so commit_all never
# commits a copied secret such as .env, nor a node_modules symlink (which a `node_modules/`
# ignore line does not match: a symlink is not a directory).
PREPARED_MANIFEST = "conductor-prepared"

_NO_HOOKS = ("-c", "core.hooksPath=/dev/null")
# core.abbrev=no: the summary line carries the full sha (saves a rev-parse).
# maintenance.auto=false: no `git maintenance run --auto` child process per commit.
# --no-gpg-sign: an unattended commit must not wait on a pinentry.
_COMMIT_ARGS = (
    *("-c", "core.abbrev=no", "-c", "maintenance.auto=false", "commit", "--allow-empty"),
    *("--no-verify", "--no-gpg-sign", "--cleanup=whitespace", "-F", "-"),
)
_CAS_RETRIES = 5
_NEVER_COPY = frozenset({".git", STATE_DIR_NAME})

# One merge at a time in this process; update-ref's compare-and-swap guards other processes.
_MERGE_LOCK = threading.Lock()


class BranchMoved(InfraError):
    """A compare-and-swap update of a branch lost: someone else moved it."""


def attempt_branch(integration_branch: str, task_id: str, attempt: int) -> str:
    """Branch of one attempt, e.g. ``conductor/phase-1.attempts/T1/2``.

    Not ``<integration>/<task>/<n>``: git cannot hold both ``refs/heads/conductor/x`` and
    ``refs/heads/conductor/x/T1/1`` (a ref cannot be a file and a directory at once).
    """
    return f"{integration_branch}.attempts/{task_id}/{attempt}"


AIDER_CACHE = ".aider.tags.cache*/"
_RACE_PAUSES = (0.01, 0.02, 0.05, 0.1, 0.2)


def _real(path: Path) -> str:
    return os.path.realpath(path)


class Workspace:
    """One repository, addressed by the root of its main worktree."""

    def __init__(self, root: Path, *, common_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.state_dir = self.root / STATE_DIR_NAME
        self._common_dir = common_dir
        self._ident: tuple[str, ...] | None = None
        self._heads: dict[str, str] = {}  # branch -> head after this process's last merge

    def _run(self, args: Sequence[str], cwd: Path | None = None, **kw: Any) -> gitcmd.GitResult:
        result = gitcmd.run([*_NO_HOOKS, *args], cwd or self.root, **kw)
        for pause in _RACE_PAUSES:
            if result.ok or "failed to read .git/worktrees/" not in result.stderr:
                break
            # git 2.39 reads every worktree's admin dir while another `worktree add` or
            # `remove` is half way through writing or deleting it: a transient failure
            time.sleep(pause)
            result = gitcmd.run([*_NO_HOOKS, *args], cwd or self.root, **kw)
        return result

    def _git(self, args: Sequence[str], cwd: Path | None = None, **kw: Any) -> str:
        result = self._run(args, cwd, **kw)
        if not result.ok:
            raise result.error()
        return result.stdout

    def _identity(self) -> tuple[str, ...]:
        """``-c user.*`` fallbacks for what neither git config nor the environment provide."""
        if self._ident is None:
            res = self._run(["config", "--get-regexp", r"^user\.(name|email)$"], c_locale=True)
            keys = {line.split(" ", 1)[0] for line in res.stdout.splitlines()} if res.ok else set()
            env = os.environ
            args: list[str] = []
            if "user.name" not in keys and not (
                env.get("GIT_AUTHOR_NAME") and env.get("GIT_COMMITTER_NAME")
            ):
                args += ["-c", f"user.name={FALLBACK_NAME}"]
            if "user.email" not in keys and not (
                env.get("EMAIL") or (env.get("GIT_AUTHOR_EMAIL") and env.get("GIT_COMMITTER_EMAIL"))
            ):
                args += ["-c", f"user.email={FALLBACK_EMAIL}"]
            self._ident = tuple(args)
        return self._ident

    # ---- the repository -------------------------------------------------------------

    @classmethod
    def discover(cls, path: Path) -> Workspace:
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

    @property
    def common_dir(self) -> Path:
        """The git dir all worktrees share (the main worktree's ``.git``)."""
        if self._common_dir is None:
            out = self._git(["rev-parse", "--path-format=absolute", "--git-common-dir"])
            self._common_dir = Path(out)
        return self._common_dir

    def ensure_state_dir(self) -> Path:
        """Create ``.conductor/`` and list it in ``info/exclude`` (once)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        exclude = self.common_dir / "info" / "exclude"
        text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
        names = {f"{lead}{STATE_DIR_NAME}{tail}" for lead in ("", "/") for tail in ("", "/")}
        lines = {line.strip() for line in text.splitlines()}
        missing = []
        if not lines & names:
            missing.append(f"# conductor: worktrees, state and logs\n{STATE_DIR_NAME}/\n")
        if AIDER_CACHE not in lines:  # aider writes its repo-map cache into the worktree
            missing.append(f"# conductor: agents' caches, never part of a task's work\n"
                           f"{AIDER_CACHE}\n")  # fmt: skip
        if missing:
            exclude.parent.mkdir(parents=True, exist_ok=True)
            sep = "" if not text or text.endswith("\n") else "\n"
            with exclude.open("a", encoding="utf-8") as fh:
                fh.write(sep + "".join(missing))
        return self.state_dir

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

    # ---- branches and refs ----------------------------------------------------------

    def ensure_branch(self, branch: str, start: str) -> str:
        """Create ``branch`` at ``start`` unless it exists (then never moved); its head."""
        ref = f"refs/heads/{branch}"
        found = self.revs([ref, start])
        head = found[ref]
        if head is not None:
            return head
        sha = found[start]
        if sha is None:
            raise UserError(f"{start!r} is not a commit in {self.root}", hint="check `base:`")
        # Empty old value: create only if absent, so a concurrent creator wins cleanly.
        res = self._run(["update-ref", "-m", f"conductor: create {branch}", ref, sha, ""])
        if res.ok:
            return sha
        head = self.rev(ref)
        if head is None:
            raise res.error()
        return head

    def set_ref(self, ref: str, sha: str) -> None:
        """Point ``ref`` (e.g. ``refs/conductor/<run>/<task>/<n>/pre``) at ``sha``."""
        self._git(["update-ref", ref, sha])

    def update_branch(self, branch: str, new: str, old: str) -> None:
        """Move ``branch`` from ``old`` to ``new``; ``BranchMoved`` if it is not at ``old``."""
        with _MERGE_LOCK:
            if not self._cas(branch, new, old, "conductor: update"):
                raise BranchMoved(f"{branch} is no longer at {old[:12]}")

    def rollback_branch(self, branch: str, to: str, expected_head: str | None = None) -> str:
        """Move ``branch`` back to ``to`` (whole-run rollback); return the head it had."""
        with _MERGE_LOCK:
            head = expected_head or self._head(branch)
            if not self._cas(branch, to, head, "conductor: rollback"):
                raise BranchMoved(f"{branch} is no longer at {head[:12]}")
            return head

    def delete_branch(self, branch: str) -> None:
        """Delete ``branch``; already gone is fine. git refuses one checked out somewhere."""
        res = self._run(["branch", "-D", branch], c_locale=True)
        if not res.ok and self.rev(f"refs/heads/{branch}") is not None:
            raise res.error()

    def list_refs(self, prefix: str) -> list[str]:
        """Refs under ``prefix``, matched by whole components (``r1`` never finds ``r10``)."""
        out = self._git(["for-each-ref", "--format=%(refname)", prefix], c_locale=True)
        return out.splitlines()

    def delete_refs(self, prefix: str) -> list[str]:
        """Delete every ref under ``prefix`` in one transaction; return their names."""
        if not prefix.startswith(("refs/conductor/", "refs/heads/conductor/")):
            raise ValueError(f"refusing to delete refs outside conductor's namespace: {prefix}")
        refs = self.list_refs(prefix)
        if refs:
            self._git(["update-ref", "--stdin"], input="".join(f"delete {r}\n" for r in refs))
        return refs

    def delete_branches(self, branches: Sequence[str]) -> None:
        """Delete these branches in one transaction (one git process, not one per branch)."""
        if branches:
            lines = "".join(f"delete refs/heads/{b}\n" for b in branches)
            self._git(["update-ref", "--stdin"], input=lines)

    def _head(self, branch: str) -> str:
        head = self.rev(f"refs/heads/{branch}")
        if head is None:
            raise InfraError(f"branch {branch} does not exist in {self.root}")
        return head

    def _cas(self, branch: str, new: str, old: str, reason: str) -> bool:
        """update-ref as compare-and-swap: False when ``branch`` is no longer at ``old``."""
        ref = f"refs/heads/{branch}"
        res = self._run(["update-ref", "-m", reason, ref, new, old])
        if res.ok:
            return True
        if self.rev(ref) != old:
            return False
        raise res.error()

    # ---- worktrees ------------------------------------------------------------------

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
        self._git(["worktree", "prune"])
        return [d.name for d in broken]

    def list_worktrees(self) -> list[tuple[Path, str | None]]:
        """(path, branch or None when detached) of every registered worktree, main first."""
        out = self._git(["worktree", "list", "--porcelain", "-z"], c_locale=True)
        return [(path, branch) for path, branch, _ in gitcmd.parse_worktrees(out)]

    def _registered(self, path: Path) -> tuple[Path, str | None] | None:
        want = _real(path)
        return next((wt for wt in self.list_worktrees() if _real(wt[0]) == want), None)

    def _owned(self, path: Path) -> bool:
        """Inside ``.conductor/``: the only place conductor may delete a stray directory."""
        return _real(path).startswith(_real(self.state_dir) + os.sep)

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
            self._git(["worktree", "prune"])  # registered, but its directory is gone
        elif path.exists() and self._owned(path):
            shutil.rmtree(path)
        elif path.exists():
            raise first.error()
        if self.rev(f"refs/heads/{branch}") is not None:
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
            raise res.error()
        if path.exists() and force and self._owned(path):
            shutil.rmtree(path)  # a stray directory git no longer knows
        self._git(["worktree", "prune"])

    def is_dirty(self, worktree: Path) -> bool:
        """Uncommitted or untracked changes, ignoring what prepare() placed."""
        args = ["--no-optional-locks", "status", "--porcelain", "-z", *_unprepared(worktree)]
        return bool(self._git(args, worktree, c_locale=True))

    # ---- commits and diffs ----------------------------------------------------------

    def commit_all(
        self, worktree: Path, subject: str, body: str, trailers: Mapping[str, str]
    ) -> str:
        """Commit everything left in ``worktree`` on top of the agent's own commits (kept;
        an empty commit is fine); return the new HEAD sha."""
        self._git(["add", "-A", *_unprepared(worktree)], worktree)
        message = format_message(subject, body, trailers)
        out = self._git([*self._identity(), *_COMMIT_ARGS], worktree, input=message, c_locale=True)
        first = out.split("\n", 1)[0]  # "[branch <sha>] subject"
        if first.startswith("[") and "] " in first:
            sha = first.split("] ", 1)[0].rsplit(" ", 1)[-1]
            if len(sha) in (40, 64) and all(c in "0123456789abcdef" for c in sha):
                return sha
        return self._git(["rev-parse", "HEAD"], worktree)

    def _commit_tree(self, tree: str, parents: Sequence[str], message: str) -> str:
        args = [*self._identity(), "commit-tree", tree, *(a for p in parents for a in ("-p", p))]
        return self._git(args, input=message, c_locale=True)

    def changed_files(self, base: str, head: str) -> list[str]:
        """Repo-relative paths added, modified or deleted between two commits."""
        args = ["diff-tree", "-r", "-z", "--name-only", "--no-renames", base, head]
        return [p for p in self._git(args, c_locale=True).split("\0") if p]

    def diffstat(self, base: str, head: str) -> tuple[int, int, int]:
        """(files, insertions, deletions); a binary file counts as a file with 0/0."""
        paths, ins, dels = self.diff_summary(base, head)
        return len(paths), ins, dels

    def diff_summary(self, base: str, head: str) -> tuple[list[str], int, int]:
        """(changed paths, insertions, deletions) from one `diff-tree --numstat`."""
        args = ["diff-tree", "-r", "-z", "--numstat", "--no-renames", base, head]
        paths: list[str] = []
        ins = dels = 0
        for record in filter(None, self._git(args, c_locale=True).split("\0")):
            added, removed, path = record.split("\t", 2)
            paths.append(path)
            ins += int(added) if added.isdigit() else 0
            dels += int(removed) if removed.isdigit() else 0
        return paths, ins, dels

    def branch_head(self, branch: str) -> str | None:
        """The branch's head, from memory when this process made the last merge.

        Saves a git process per task; merge() still compare-and-swaps, so a head moved
        by someone else is detected there and re-read.
        """
        # no lock: a dict read is atomic, and waiting for a merge in progress here would
        # hold every starting task behind the one-at-a-time merges
        cached = self._heads.get(branch)
        return cached or self.rev(f"refs/heads/{branch}")

    # ---- merging --------------------------------------------------------------------

    def _merge_tree(self, ours: str, theirs: str) -> str:
        """Tree of the three-way merge of two commits; ``MergeConflict`` on conflict."""
        args = ["merge-tree", "--write-tree", "-z", "--name-only", ours, theirs]
        res = self._run(args, c_locale=True)
        if res.returncode == 0:
            return res.stdout.split("\0", 1)[0]
        if res.returncode == 1:
            paths, messages = gitcmd.parse_conflict(res.stdout)
            raise MergeConflict(paths or ["(unknown)"], messages)
        raise res.error()

    def merge(
        self,
        branch: str,
        commit: str,
        subject: str,
        trailers: Mapping[str, str],
        expected_head: str | None = None,
    ) -> str:
        """Merge ``commit`` into ``branch`` without a working tree; return the merge sha.

        Always a real two-parent commit carrying ``trailers`` (so ``git log --merges
        --grep`` finds one merge per task). Given ``expected_head`` the branch must still be
        there (``BranchMoved`` otherwise; saves a process); without it a branch moved by
        someone else is re-read and the merge redone.
        """
        message = format_message(subject, "", trailers)
        with _MERGE_LOCK:
            head = expected_head or self._heads.get(branch)
            for _ in range(_CAS_RETRIES):
                head = head or self._head(branch)
                new = self._commit_tree(self._merge_tree(head, commit), (head, commit), message)
                if self._cas(branch, new, head, f"conductor: {subject}"):
                    self._heads[branch] = new
                    return new
                self._heads.pop(branch, None)
                if expected_head is not None:
                    raise BranchMoved(f"{branch} is no longer at {expected_head[:12]}")
                head = None
        raise BranchMoved(f"{branch} kept moving during {_CAS_RETRIES} merge attempts")

    def revert_merge(
        self, branch: str, merge_sha: str, subject: str, trailers: Mapping[str, str]
    ) -> str:
        """Undo one task's merge on ``branch`` without a working tree; return the new head.

        A reverse three-way merge: base the merge, theirs its first parent, ours the head.
        git 2.39 lacks ``merge-tree --merge-base``, so a throwaway child of the merge holding
        its first parent's tree makes the merge the one merge base.
        """
        message = format_message(subject, "", trailers)
        with _MERGE_LOCK:
            helper = self._commit_tree(f"{merge_sha}^1^{{tree}}", (merge_sha,), "revert helper\n")
            for _ in range(_CAS_RETRIES):
                head = self._head(branch)
                if not self._is_ancestor(merge_sha, head):
                    raise UserError(f"{merge_sha[:12]} is not merged into {branch}")
                new = self._commit_tree(self._merge_tree(head, helper), (head,), message)
                if self._cas(branch, new, head, f"conductor: {subject}"):
                    return new
        raise BranchMoved(f"{branch} kept moving during {_CAS_RETRIES} revert attempts")

    def _is_ancestor(self, commit: str, head: str) -> bool:
        res = self._run(["merge-base", "--is-ancestor", commit, head], c_locale=True)
        if res.returncode in (0, 1):
            return res.returncode == 0
        raise res.error()

    def is_merged(self, branch: str, commit: str) -> bool:
        """``commit`` is an ancestor of ``branch`` (False when the branch does not exist)."""
        head = self.rev(f"refs/heads/{branch}")
        return head is not None and self._is_ancestor(commit, head)

    def find_merge(self, branch: str, run_id: str, task_id: str) -> str | None:
        """Newest first-parent merge on ``branch`` carrying both trailers, or None."""
        if self.rev(f"refs/heads/{branch}") is None:
            return None
        args = [
            *("rev-list", "-n1", "--first-parent", "--merges", "-E", "--all-match"),
            f"--grep=^Conductor-Run: {ere_escape(run_id)}$",
            f"--grep=^Conductor-Task: {ere_escape(task_id)}$",
            *(f"refs/heads/{branch}", "--"),
        ]
        return self._git(args, c_locale=True).strip() or None

    # ---- preparing a fresh worktree -------------------------------------------------

    def prepare(self, worktree: Path, copy: Sequence[str], symlink: Sequence[str]) -> None:
        """Copy untracked files into a fresh ``worktree`` and symlink shared directories.

        Copies ``copy`` + the lines of ``.worktreeinclude`` (root-relative paths or
        ``Path.glob`` patterns; ``#`` comments) from the main root; symlinks ``symlink``
        paths with relative links to the main root's. Missing sources are skipped, and
        nothing existing (tracked files, an earlier run's copies) is overwritten.
        """
        worktree = Path(worktree)
        placed: list[str] = []
        for rel in self._copy_sources(copy):
            if _copy_into(self.root, worktree, rel):
                placed.append(rel)
        for entry in symlink:
            rel = _clean_rel(entry)
            if rel and (self.root / rel).exists() and _link_into(self.root, worktree, rel):
                placed.append(rel)
        _record_prepared(worktree, placed)

    def _copy_sources(self, copy: Sequence[str]) -> Iterator[str]:
        patterns = list(copy)
        include = self.root / WORKTREEINCLUDE
        if include.is_file():
            lines = include.read_text(encoding="utf-8").splitlines()
            patterns += [s for s in map(str.strip, lines) if s and not s.startswith(("#", "!"))]
        seen: set[str] = set()
        for rel in filter(None, map(_clean_rel, patterns)):
            if set(rel) & set("*?["):
                found = [p.relative_to(self.root).as_posix() for p in self.root.glob(rel)]
            else:
                found = [rel] if os.path.lexists(self.root / rel) else []
            for match in sorted(found):
                if match not in seen and match.split("/", 1)[0] not in _NEVER_COPY:
                    seen.add(match)
                    yield match


def _clean_rel(pattern: str) -> str:
    """A root-relative posix path, or "" for one that would leave the root."""
    parts = [p for p in pattern.strip().split("/") if p not in ("", ".")]
    return "" if ".." in parts else "/".join(parts)


def _copy_into(root: Path, worktree: Path, rel: str) -> bool:
    """Copy ``root/rel`` into the worktree unless something is there already."""
    src, dst = root / rel, worktree / rel
    if os.path.lexists(dst):  # tracked (a partly tracked dir included) or copied before
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst, follow_symlinks=False)
    return True


def _link_into(root: Path, worktree: Path, rel: str) -> bool:
    dst = worktree / rel
    if os.path.lexists(dst):
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Relative to the link's real directory: the kernel resolves `..` physically.
    src = _real(root / rel)
    os.symlink(os.path.relpath(src, _real(dst.parent)), dst, target_is_directory=Path(src).is_dir())
    return True


def _manifest(worktree: Path) -> Path | None:
    """``<git dir>/worktrees/<id>/conductor-prepared``, found via the worktree's .git file."""
    marker = Path(worktree) / ".git"
    if not marker.is_file():
        return None
    text = marker.read_text(encoding="utf-8").strip()
    if not text.startswith("gitdir:"):
        return None
    return Path(worktree) / text[len("gitdir:") :].strip() / PREPARED_MANIFEST


def _prepared(worktree: Path) -> list[str]:
    manifest = _manifest(worktree)
    if manifest is None or not manifest.is_file():
        return []
    return [line for line in manifest.read_text(encoding="utf-8").splitlines() if line]


def _record_prepared(worktree: Path, placed: list[str]) -> None:
    manifest = _manifest(worktree)
    if manifest is not None and placed:
        entries = dict.fromkeys([*_prepared(worktree), *placed])
        manifest.write_text("".join(f"{e}\n" for e in entries), encoding="utf-8")


def _unprepared(worktree: Path) -> list[str]:
    """Pathspec for everything but what prepare() placed (empty when it placed nothing)."""
    placed = _prepared(worktree)
    return ["--", ":/", *(f":(top,exclude,literal){p}" for p in placed)] if placed else []
