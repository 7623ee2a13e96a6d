"""What the after-the-fact care of runs shares: run lookup, exact ref deletion.

The care itself lives in one module per concern (DESIGN §3, §4): :mod:`conductor.ops.rollback`
moves an integration branch back, :mod:`conductor.ops.clean` removes what no live run owns,
:mod:`conductor.ops.export` renders a stored run. Nothing there touches the user's branches,
index or working tree, and every refusal (``UserError``) happens before the first change.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from conductor.errors import InfraError, UserError
from conductor.git import cmd as gitcmd
from conductor.state.store import Row, Store

ROLLBACK_NS = "refs/conductor/rollback/"
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")  # update-ref runs reference-transaction hooks


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
