"""Reading what git holds for the after-the-fact care of runs (rollback, clean): the
first-parent log with its ``Conductor-Run`` trailers, refs with their shas, and attempt
branches whose work the integration branch lacks. One git process per question.
"""

from __future__ import annotations

from dataclasses import dataclass

from conductor.git import refs
from conductor.git.repo import Repo


@dataclass(frozen=True)
class LoggedCommit:
    sha: str
    run: str | None  # its Conductor-Run trailer (the first, when there are several)


class History(Repo):
    """The read-only half of ``Workspace`` that rollback and clean ask."""

    def first_parent_log(self, head: str, stop: str) -> list[LoggedCommit]:
        """Commits on ``head``'s first-parent line that ``stop`` lacks, newest first.

        git reads the trailers itself in the same process (``%(trailers:…)``): parsing
        them per commit afterwards would cost a process each.
        """
        fmt = "--format=%H%x1f%(trailers:key=Conductor-Run,valueonly,separator=%x2c)"
        args = ["log", "--first-parent", "-z", fmt, head, f"^{stop}", "--"]
        out = self._git(args, c_locale=True)
        commits = []
        for record in filter(None, out.split("\0")):
            sha, _, run = record.strip("\n").partition("\x1f")
            commits.append(LoggedCommit(sha, run.strip().split(",")[0] or None))
        return commits

    def live_merge_log(self, branch: str) -> list[tuple[str, str]]:
        """(task, merge) for every task merge on ``branch``'s first-parent line that no
        later conductor commit reverted (``Conductor-Revert``), newest first. Read in one
        git process; normally a task has one: its current result."""
        ref = refs.branch_ref(branch)
        trailer = "%(trailers:key={},valueonly,separator={})"
        # a fan-out task's id may hold spaces (`T5[module=a b]`): ids are split on \x1e
        fmt = "%x1f".join(["%H", "%P", trailer.format("Conductor-Task", "%x1e"),
                           trailer.format("Conductor-Revert", "%x20")])  # fmt: skip
        res = self._run(["log", "--first-parent", "-z", f"--format={fmt}", ref, "--"])
        if not res.ok:
            if self.rev(ref) is not None:
                raise res.error()
            return []  # no integration branch yet: nothing merged (one process either way)
        out = res.stdout
        merges: list[tuple[str, str]] = []
        reverted: set[str] = set()
        for record in filter(None, out.split("\0")):
            fields = record.strip("\n").split("\x1f")
            sha, parents, task, reverts = fields + [""] * (4 - len(fields))
            reverted.update(reverts.split())
            if len(parents.split()) > 1 and task.strip():
                merges.append((task.split("\x1e")[0].strip(), sha))
        return [(task, sha) for task, sha in merges if sha not in reverted]

    def live_merges(self, branch: str) -> dict[str, list[str]]:
        """task -> its live merges on ``branch``, newest first (see live_merge_log)."""
        return by_task(self.live_merge_log(branch))

    def ref_shas(self, prefix: str) -> dict[str, str]:
        """ref -> sha of every ref under ``prefix``."""
        out = self._git(["for-each-ref", "--format=%(refname) %(objectname)", prefix])
        return dict(line.rsplit(" ", 1) for line in out.splitlines() if line)

    def unmerged_attempts(self, integration: str) -> set[str]:
        """Full refs of the attempt branches of ``integration`` holding commits it lacks."""
        prefix = refs.attempts_prefix(integration)
        head = refs.branch_ref(integration)
        if self.rev(head) is None:
            return set(self.ref_shas(prefix))  # no integration branch: nothing is merged
        args = ["for-each-ref", "--format=%(refname)", f"--no-merged={head}", prefix]
        return set(self._git(args, c_locale=True).splitlines())


def by_task(log: list[tuple[str, str]]) -> dict[str, list[str]]:
    """A live merge log grouped: task -> its merges, newest first."""
    live: dict[str, list[str]] = {}
    for task, sha in log:
        live.setdefault(task, []).append(sha)
    return live
