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
