"""Moving the integration branch: merges and reverts without a working tree
(``merge-tree --write-tree`` + ``commit-tree`` + a compare-and-swap ``update-ref``), a
whole-run rollback, and finding a task's merge again after a crash (DESIGN §4).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from conductor.errors import InfraError, MergeConflict, UserError
from conductor.git import cmd as gitcmd
from conductor.git import refs
from conductor.git.cmd import ere_escape, format_message
from conductor.git.repo import Repo

_CAS_RETRIES = 5

# One merge at a time in this process; update-ref's compare-and-swap guards other processes.
_MERGE_LOCK = threading.Lock()


class BranchMoved(InfraError):
    """A compare-and-swap update of a branch lost: someone else moved it."""


class Merging(Repo):
    """The half of ``Workspace`` that moves branches other than an attempt's."""

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

    def branch_head(self, branch: str) -> str | None:
        """The branch's head, from memory when this process made the last merge.

        Saves a git process per task; merge() still compare-and-swaps, so a head moved
        by someone else is detected there and re-read.
        """
        # no lock: a dict read is atomic, and waiting for a merge in progress here would
        # hold every starting task behind the one-at-a-time merges
        cached = self._heads.get(branch)
        return cached or self.rev(refs.branch_ref(branch))

    def _commit_tree(self, tree: str, parents: Sequence[str], message: str) -> str:
        args = [*self._identity(), "commit-tree", tree, *(a for p in parents for a in ("-p", p))]
        return self._git(args, input=message, c_locale=True)

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

    def revert_merges(
        self, branch: str, merges: Sequence[str], subject: str, trailers: Mapping[str, str]
    ) -> str:
        """Undo several merges on ``branch`` (newest first) in ONE commit; the new head.

        Each is taken out with the reverse three-way merge of :meth:`revert_merge`, on
        throwaway commits; only the result becomes a commit on the branch. A merge whose
        changes later work built on raises ``MergeConflict`` and the branch stays as it was.
        """
        message = format_message(subject, "", trailers)
        with _MERGE_LOCK:
            for _ in range(_CAS_RETRIES):
                head = self._heads.get(branch) or self._head(branch)
                tip = head
                for merge_sha in merges:
                    helper = self._commit_tree(f"{merge_sha}^1^{{tree}}", (merge_sha,), "revert\n")
                    tip = self._commit_tree(self._merge_tree(tip, helper), (tip,), "revert\n")
                new = self._commit_tree(f"{tip}^{{tree}}", (head,), message)
                if self._cas(branch, new, head, f"conductor: {subject}"):
                    self._heads[branch] = new
                    return new
                self._heads.pop(branch, None)
        raise BranchMoved(f"{branch} kept moving during {_CAS_RETRIES} revert attempts")

    def is_merged(self, branch: str, commit: str) -> bool:
        """``commit`` is an ancestor of ``branch`` (False when the branch does not exist)."""
        head = self.rev(refs.branch_ref(branch))
        return head is not None and self._is_ancestor(commit, head)

    def find_merge(self, branch: str, run_id: str, task_id: str) -> str | None:
        """Newest first-parent merge on ``branch`` carrying both trailers, or None."""
        ref = refs.branch_ref(branch)
        if self.rev(ref) is None:
            return None
        args = [
            *("rev-list", "-n1", "--first-parent", "--merges", "-E", "--all-match"),
            f"--grep=^Conductor-Run: {ere_escape(run_id)}$",
            f"--grep=^Conductor-Task: {ere_escape(task_id)}$",
            *(ref, "--"),
        ]
        return self._git(args, c_locale=True).strip() or None
