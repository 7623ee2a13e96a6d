"""Whose merge was it? The task behind the newest merge on the integration branch that
touched some paths, read from the ``Conductor-Task`` trailers conductor's merges carry.

Asked when a task's merge conflicts: the answer names the task whose change the retry on
the new head must build on (the summary says "T2 was redone on top of T1").
"""

from __future__ import annotations

from collections.abc import Sequence

from conductor.git import cmd as gitcmd
from conductor.git import refs
from conductor.git.repo import Repo


def last_merged_task(repo: Repo, branch: str, since: str, paths: Sequence[str]) -> str | None:
    """The task of the newest first-parent merge on ``branch`` after ``since`` that
    changed any of ``paths``; None when there is none (or git cannot say).

    ``--first-parent`` compares each merge with the branch's previous head, so a merge
    counts exactly when the task it brought in changed one of the paths. One process.
    """
    if not since or not paths:
        return None
    # not `,` between ids: a fan-out task's id holds commas (`T5[module=auth,py=3.12]`)
    fmt = "--format=%x1e%(trailers:key=Conductor-Task,valueonly,separator=%x1d)"
    args = ["log", "--first-parent", "--merges", fmt,
            f"{since}..{refs.branch_ref(branch)}", "--", *paths]  # fmt: skip
    # paths as they are: a conflicting file named `*.md` is not a glob
    res = gitcmd.run([*gitcmd.NO_HOOKS, "--literal-pathspecs", *args], repo.root, c_locale=True)
    if not res.ok:  # a name for a summary line is not worth failing an attempt over
        return None
    for record in res.stdout.split("\x1e"):
        task = record.strip().split("\x1d")[0].strip()
        if task:
            return task
    return None
