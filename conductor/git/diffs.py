"""The patch a task brings: what `conductor diff` shows a reviewer.

For a held (or any unmerged) attempt, its commit against the merge base with the
integration head (``git diff HEAD...POST``): the change it would merge, without what
others merged since it started. For a merged task, its merge commit against the
branch's head before it: the change it did merge. One git process each.
"""

from __future__ import annotations

from conductor.errors import GitError
from conductor.git import cmd as gitcmd
from conductor.git import refs
from conductor.git.repo import Repo

# For people, the same on every machine: no colour (conductor colours it), no external
# diff or textconv driver of the user's config, renames shown as renames.
_ARGS = ("diff", "--no-color", "--no-ext-diff", "--no-textconv", "-M")


def _diff(repo: Repo, *revs: str) -> str:
    res = gitcmd.run([*gitcmd.NO_HOOKS, *_ARGS, *revs, "--"], repo.root)
    if not res.ok:
        raise res.error()
    return res.stdout + "\n" if res.stdout else ""


def pending_patch(repo: Repo, branch: str, commit: str, fallback_base: str | None) -> str:
    """What merging ``commit`` into ``branch`` would bring: its changes since the two
    parted. Against ``fallback_base`` when the branch is gone (rolled back, deleted)."""
    head = repo.rev(refs.branch_ref(branch))
    if head is not None:
        return _diff(repo, f"{head}...{commit}")
    if fallback_base is None:
        raise GitError(["diff"], 128, f"branch {branch} does not exist")
    return _diff(repo, fallback_base, commit)


def merged_patch(repo: Repo, merge: str) -> str:
    """What a task's merge commit brought into the branch (against its first parent)."""
    return _diff(repo, f"{merge}^1", merge)
