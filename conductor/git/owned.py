"""Which branches conductor created (or was told to adopt): the only ones it will move.

An integration branch is moved by conductor's merges and rollbacks; a branch the user
made for themselves must never become one by a typo in ``integration_branch:``. So when
the branch already exists, conductor asks whether it made it.

The record is a marker ref, ``refs/conductor-owned/<branch>``, written when a run takes
the branch (see :func:`claim`). Why a ref and not the alternatives:

* the reflog's first entry (``conductor: create <branch>``, written by ``ensure_branch``)
  expires: ``git gc`` drops entries older than ``gc.reflogExpire`` (90 days), and with
  ``core.logAllRefUpdates=false`` there is none at all, so a long-lived integration branch
  would stop being conductor's. It is still read, as a fallback for branches created
  before markers existed and for a run killed between creating the branch and claiming it;
* the store (``.conductor/state.db``) is deleted with ``.conductor/`` while the branch
  lives on;
* a ref lives with the branches, survives gc, costs one process to read, and is
  invisible to ``git branch``. It sits outside ``refs/conductor/``, which ``clean`` sweeps
  of everything no live run owns.
"""

from __future__ import annotations

from pathlib import Path

from conductor.git import cmd as gitcmd
from conductor.git import refs

OWNED_NS = "refs/conductor-owned/"


def owned_ref(branch: str) -> str:
    """``refs/conductor-owned/<branch>``: the marker that conductor may move ``branch``."""
    return f"{OWNED_NS}{branch}"


def created_by_conductor(root: Path, branch: str) -> bool:
    """Whether conductor created (or was told to adopt) the existing ``branch``."""
    if _has_marker(root, branch):
        return True
    log = ["reflog", "show", "--format=%gs", refs.branch_ref(branch), "--"]
    res = gitcmd.run([*gitcmd.NO_HOOKS, *log], root, c_locale=True)
    entries = res.stdout.splitlines() if res.ok else []
    return bool(entries) and entries[-1] == f"conductor: create {branch}"  # the oldest entry


def claim(root: Path, branch: str, sha: str) -> None:
    """Record that conductor owns ``branch`` (created it, or the user adopted it).

    Create-only (empty old value): a marker that exists already stays as it was.
    """
    args = ["update-ref", "-m", f"conductor: owns {branch}", owned_ref(branch), sha, ""]
    res = gitcmd.run([*gitcmd.NO_HOOKS, *args], root, c_locale=True)
    if not res.ok and not _has_marker(root, branch):  # lost a race to another claim: fine
        raise res.error()


def _has_marker(root: Path, branch: str) -> bool:
    args = [*gitcmd.NO_HOOKS, "rev-parse", "--verify", "--quiet", owned_ref(branch)]
    return gitcmd.run(args, root, c_locale=True).ok
