"""Every ref and branch name conductor builds or reads back (DESIGN §4), in one place.

Pure string work, no git: building a name here and parsing it elsewhere by hand is how
``clean`` and the runner would drift apart. Namespaces:

* ``refs/heads/<integration>``: the integration branch (``conductor/<name>`` by default);
* ``refs/heads/<integration>.attempts/<run>/<task>/<n>``: one attempt's branch (per run,
  so a new run never meets, reuses or starts from an earlier run's attempt);
* ``refs/conductor/<run>/<task>/<n>/pre``: where that attempt began (its pre-snapshot);
* ``refs/conductor/rollback/<run>/<stamp>[-k]``: a head a whole-run rollback parked.
"""

from __future__ import annotations

from dataclasses import dataclass

from conductor.spec.names import task_component

HEADS = "refs/heads/"
NAMESPACE = "refs/conductor/"  # conductor's own refs: nothing else writes here
ROLLBACK_NS = f"{NAMESPACE}rollback/"
BRANCH_PREFIX = "conductor/"  # default integration branches, and so their attempts
# `<integration>.attempts/…`, not `<integration>/…`: git cannot hold both
# refs/heads/conductor/x and refs/heads/conductor/x/T1/1 (a ref cannot be a file and a
# directory at once).
ATTEMPTS_MARK = ".attempts/"


def branch_ref(branch: str) -> str:
    """The full ref of a branch: ``conductor/x`` → ``refs/heads/conductor/x``."""
    return f"{HEADS}{branch}"


def branch_of(ref: str) -> str | None:
    """The branch a full ref names, or None for a ref that is not a branch."""
    return ref[len(HEADS) :] if ref.startswith(HEADS) else None


@dataclass(frozen=True)
class AttemptBranch:
    """An attempt branch taken apart: ``<integration>.attempts/<run>/<task>/<n>``.

    ``run_id`` is None for the ``<integration>.attempts/<task>/<n>`` branches of
    conductor before attempts were named per run (``clean`` still recognises them)."""

    integration: str
    run_id: str | None
    task_id: str
    n: int


def attempt_branch(integration_branch: str, run_id: str, task_id: str, attempt: int) -> str:
    """Branch of one attempt, e.g. ``conductor/phase-1.attempts/20260101-120000-ab12/T1/2``.

    A fan-out task's id is made branch-safe: ``T5[module=auth]`` is ``T5-module-auth``."""
    return f"{integration_branch}{ATTEMPTS_MARK}{run_id}/{task_component(task_id)}/{attempt}"


def attempts_prefix(integration_branch: str) -> str:
    """Full-ref prefix of every attempt branch of ``integration_branch``."""
    return branch_ref(f"{integration_branch}{ATTEMPTS_MARK}")


def parse_attempt_branch(branch: str) -> AttemptBranch | None:
    """``attempt_branch`` read back; None for a branch that is not an attempt's."""
    integration, mark, rest = branch.rpartition(ATTEMPTS_MARK)
    parts = rest.split("/")
    if not mark or len(parts) not in (2, 3) or not all(parts) or not parts[-1].isdigit():
        return None
    run_id = parts[0] if len(parts) == 3 else None
    return AttemptBranch(integration, run_id, parts[-2], int(parts[-1]))


def run_prefix(run_id: str) -> str:
    """Prefix of every ref a run keeps under ``refs/conductor/`` (its pre-snapshots)."""
    return f"{NAMESPACE}{run_id}/"


def attempt_refs(run_id: str, task_id: str, attempt: int) -> str:
    """Prefix of the refs of one attempt under ``refs/conductor/`` (branch-safe task name)."""
    return f"{run_prefix(run_id)}{task_component(task_id)}/{attempt}/"


def pre_ref(run_id: str, task_id: str, attempt: int) -> str:
    """``refs/conductor/<run>/<task>/<n>/pre``: where an attempt began."""
    return f"{attempt_refs(run_id, task_id, attempt)}pre"


def run_of(ref: str) -> str | None:
    """The run a ref under ``refs/conductor/`` belongs to (``rollback`` for rollback refs);
    None outside that namespace."""
    if not ref.startswith(NAMESPACE):
        return None
    return ref[len(NAMESPACE) :].split("/", 1)[0]


def rollback_ref(run_id: str, stamp: str, n: int = 1) -> str:
    """Where the ``n``-th whole-run rollback of ``run_id`` within one ``stamp`` parks the
    old head (``-n`` only from the second: two rollbacks within a second)."""
    suffix = f"-{n}" if n > 1 else ""
    return f"{ROLLBACK_NS}{run_id}/{stamp}{suffix}"


def is_rollback_ref(ref: str) -> bool:
    return ref.startswith(ROLLBACK_NS)


def may_delete_prefix(prefix: str) -> bool:
    """Whether a whole prefix may be deleted: only inside conductor's own namespaces."""
    return prefix.startswith((NAMESPACE, branch_ref(BRANCH_PREFIX)))


def may_delete_ref(ref: str) -> bool:
    """Whether one named ref may be deleted: conductor's refs, or a branch (``clean`` names
    attempt branches of integration branches outside ``conductor/`` too, each one checked
    against the sha it was seen at)."""
    return ref.startswith((NAMESPACE, HEADS))


def is_sha(text: str) -> bool:
    """A full object name (SHA-1 or SHA-256), as git writes it in ref files and output."""
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)
