"""What the after-the-fact care of runs shares: liveness, run lookup, exact ref deletion.

The care itself lives in one module per concern (DESIGN §3, §4): :mod:`conductor.rollback`
moves an integration branch back, :mod:`conductor.cleaning` removes what no live run owns,
:mod:`conductor.export` renders a stored run. Nothing there touches the user's branches,
index or working tree, and every refusal (``UserError``) happens before the first change.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from conductor import gitcmd
from conductor.errors import InfraError, UserError
from conductor.store import Row, Store

STALE_S = 30.0  # a heartbeat older than this no longer proves a runner is alive
ROLLBACK_NS = "refs/conductor/rollback/"
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")  # update-ref runs reference-transaction hooks


# ---- liveness ---------------------------------------------------------------------------


def is_live(state_dir: Path, run: Row, now: float | None = None) -> bool:
    """A runner may be driving ``run`` right now, so what it owns must not be touched.

    Either sign of life counts, the runner's lock or a heartbeat under ``STALE_S`` old: for
    a destructive command a false "live" costs a retry later, a false "dead" an agent's work.
    """
    if run["state"] not in ("running", "cancelling"):
        return False
    if (now or time.time()) - (run["heartbeat"] or 0) < STALE_S:
        return True
    from conductor.liveness import lock_held

    return lock_held(state_dir, str(run["id"]))


def run_row(store: Store, run_id: str) -> Row:
    run = store.run(run_id)
    if run is None:
        raise UserError(f"no run `{run_id}`", hint="`conductor runs` lists them")
    return run


def delete_exact(root: Path, refs: Mapping[str, str]) -> None:
    """Delete exactly ``refs`` in one transaction, each only if still at its expected sha.

    ``Workspace.delete_refs`` deletes a whole prefix; clean must spare some refs under one.
    """
    bad = [r for r in refs if not r.startswith(("refs/conductor/", "refs/heads/"))]
    if bad:
        raise ValueError(f"refusing to delete refs outside conductor's namespace: {bad}")
    if not refs:
        return
    script = "".join(f"delete {ref} {sha}\n" for ref, sha in refs.items())
    res = gitcmd.run([*NO_HOOKS, "update-ref", "--stdin"], root, input=script)
    if not res.ok:
        raise InfraError(f"refs changed while cleaning, none deleted ({res.stderr.strip()})")
