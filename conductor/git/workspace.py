"""The git model (DESIGN §4): integration branch, worktree per attempt, commits, merges.

``Workspace`` is the one object the rest of conductor uses; its parts live by concern in
:mod:`~conductor.git.repo` (running git, reading revisions), :mod:`~conductor.git.worktrees`,
:mod:`~conductor.git.prepare` (a fresh worktree's copies and links),
:mod:`~conductor.git.merge` (moving the integration branch) and
:mod:`~conductor.git.history` (logs and refs for rollback and clean); every name it gives a
ref or branch comes from :mod:`~conductor.git.refs`. Invariants:

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

from collections.abc import Mapping, Sequence
from pathlib import Path

from conductor.errors import InfraError, UserError
from conductor.git import indexfile, looseref, refs, summary
from conductor.git import prepare as _prepare
from conductor.git.cmd import format_message
from conductor.git.guard import Guarding, Pinned
from conductor.git.history import History, LoggedCommit
from conductor.git.indexfile import IndexMark
from conductor.git.merge import BranchMoved, Merging
from conductor.git.summary import Committed
from conductor.git.worktrees import Worktrees
from conductor.state.layout import STATE_DIR_NAME

__all__ = ["BranchMoved", "Committed", "IndexMark", "LoggedCommit", "Workspace"]

AIDER_CACHE = ".aider.tags.cache*/"
# core.abbrev=no: the summary line carries the full sha (saves a rev-parse).
# maintenance.auto=false: no `git maintenance run --auto` child process per commit.
# --no-gpg-sign: an unattended commit must not wait on a pinentry.
# diff.algorithm=myers: the summary line counts lines as diff-tree (which ignores that
# setting) does, so commit_work may take its counts (patience or histogram differ).
_COMMIT_ARGS = (
    *("-c", "core.abbrev=no", "-c", "maintenance.auto=false", "-c", "diff.algorithm=myers"),
    *("commit", "--allow-empty"),
    *("--no-verify", "--no-gpg-sign", "--cleanup=whitespace", "-F", "-"),
)


class Workspace(Merging, Worktrees, History, Guarding):
    """One repository, addressed by the root of its main worktree."""

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

    # ---- branches and refs ----------------------------------------------------------

    def ensure_branch(self, branch: str, start: str) -> str:
        """Create ``branch`` at ``start`` unless it exists (then never moved); its head."""
        ref = refs.branch_ref(branch)
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

    def delete_branch(self, branch: str) -> None:
        """Delete ``branch``; already gone is fine. git refuses one checked out somewhere."""
        res = self._run(["branch", "-D", branch], c_locale=True)
        if not res.ok and self.rev(refs.branch_ref(branch)) is not None:
            raise res.error()

    def list_refs(self, prefix: str) -> list[str]:
        """Refs under ``prefix``, matched by whole components (``r1`` never finds ``r10``)."""
        out = self._git(["for-each-ref", "--format=%(refname)", prefix], c_locale=True)
        return out.splitlines()

    def delete_refs(self, prefix: str) -> list[str]:
        """Delete every ref under ``prefix`` in one transaction; return their names."""
        if not refs.may_delete_prefix(prefix):
            raise ValueError(f"refusing to delete refs outside conductor's namespace: {prefix}")
        found = self.list_refs(prefix)
        self._delete(found, "refs/conductor")
        return found

    def _delete(self, names: Sequence[str], stop_at: str) -> None:
        """Delete refs nothing else moves now (a finished run's): loose ones by hand
        (looseref.delete), the rest in one git transaction."""
        left = looseref.delete(self.common_dir, list(names), stop_at)
        if left:
            self._git(["update-ref", "--stdin"], input="".join(f"delete {r}\n" for r in left))

    def delete_exact(self, expected: Mapping[str, str]) -> None:
        """Delete exactly these refs in one transaction, each only if still at its sha.

        ``delete_refs`` deletes a whole prefix; clean must spare some refs under one.
        ``InfraError`` (and nothing deleted) when any of them moved meanwhile.
        """
        bad = [r for r in expected if not refs.may_delete_ref(r)]
        if bad:
            raise ValueError(f"refusing to delete refs outside conductor's namespace: {bad}")
        if not expected:
            return
        script = "".join(f"delete {ref} {sha}\n" for ref, sha in expected.items())
        res = self._run(["update-ref", "--stdin"], input=script)
        if not res.ok:
            raise InfraError(f"refs changed while cleaning, none deleted ({res.stderr.strip()})")

    def delete_branches(self, branches: Sequence[str]) -> None:
        """Delete these branches in one transaction (one git process, not one per branch)."""
        self._delete([refs.branch_ref(b) for b in branches], "refs/heads")

    # ---- a fresh worktree -----------------------------------------------------------

    def prepare(self, worktree: Path, copy: Sequence[str], symlink: Sequence[str]) -> None:
        """Copy untracked files into a fresh ``worktree`` and symlink shared directories
        (see :func:`conductor.git.prepare.prepare`)."""
        _prepare.prepare(self.root, worktree, copy, symlink)

    # ---- commits and diffs ----------------------------------------------------------

    def commit_all(
        self,
        worktree: Path,
        subject: str,
        body: str,
        trailers: Mapping[str, str],
        pinned: Pinned | None = None,
    ) -> str:
        """Commit everything left in ``worktree`` on top of the agent's own commits (kept;
        an empty commit is fine); return the new HEAD sha. With ``pinned`` (an attempt)
        git is told the attempt's git directory and work tree, so whatever the agent did to
        the worktree's `.git` cannot send the commit anywhere else."""
        return self._add_commit(worktree, subject, body, trailers, pinned, verbose=False)[0]

    def index_mark(self, pinned: Pinned | None, start: str) -> IndexMark | None:
        """The attempt's index as its worktree was made at ``start`` (no git process), for
        ``commit_work`` to tell whether anything was staged since."""
        if pinned is None or len(start) not in (40, 64):
            return None
        return indexfile.mark(pinned.git_dir / "index", len(start) // 2)

    def commit_work(
        self,
        worktree: Path,
        subject: str,
        body: str,
        trailers: Mapping[str, str],
        pinned: Pinned | None,
        *,
        start: str,
        mark: IndexMark | None,
    ) -> Committed:
        """``commit_all``, and what the commit changed since ``start``, equal to
        ``diff_summary(start, sha)``. Read off the add and the commit when that is exact:
        the index still holds what ``mark`` saw when the worktree was made at ``start``
        (nothing staged, so the add reports the whole change), the new commit's parent is
        ``start`` (the agent made no commit), and the add's paths are as many as the
        commit's summary counts (no renames, which that summary always looks for);
        otherwise one ``diff-tree``."""
        clean = (
            mark is not None and pinned is not None
            and indexfile.unchanged(mark, pinned.git_dir / "index", len(start) // 2)
        )  # fmt: skip
        sha, added, said = self._add_commit(worktree, subject, body, trailers, pinned, clean)
        told = summary.fold(added, said) if clean else None
        if told is not None and summary.loose_parents(self.common_dir, sha) == [start]:
            return Committed(sha, *told, folded=True)
        return Committed(sha, *self.diff_summary(start, sha))

    def _add_commit(
        self,
        worktree: Path,
        subject: str,
        body: str,
        trailers: Mapping[str, str],
        pinned: Pinned | None,
        verbose: bool,
    ) -> tuple[str, str, str]:
        """`git add -A` (``--verbose``: it lists what it stages) and `git commit`: the new
        sha, and what each of the two printed."""
        where = pinned.args() if pinned is not None else []
        if pinned is not None:  # every process of the attempt is stopped by now: a lock
            # left in its own git is a git the agent's end cut short (a timeout during its
            # `git add`), and would stop this commit and so lose the work
            for lock in (pinned.git_dir / "index.lock",
                         self.common_dir / f"{refs.branch_ref(pinned.branch)}.lock"):  # fmt: skip
                lock.unlink(missing_ok=True)
        exclude = _prepare.unprepared(worktree, pinned.git_dir if pinned else None)
        loud = ["--verbose"] if verbose else []
        added = self._git([*where, "add", "-A", *loud, *exclude], worktree, c_locale=verbose)
        message = format_message(subject, body, trailers)
        args = [*where, *self._identity(), *_COMMIT_ARGS]
        out = self._git(args, worktree, input=message, c_locale=True)
        first = out.split("\n", 1)[0]  # "[branch <sha>] subject"
        if first.startswith("[") and "] " in first:
            sha = first.split("] ", 1)[0].rsplit(" ", 1)[-1]
            if refs.is_sha(sha):
                return sha, added, out
        return self._git([*where, "rev-parse", "HEAD"], worktree), added, out

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
