"""What the after-the-fact care of runs shares: looking a run up.

The care itself lives in one module per concern (DESIGN §3, §4): :mod:`conductor.ops.rollback`
moves an integration branch back, :mod:`conductor.ops.clean` removes what no live run owns,
:mod:`conductor.ops.export` renders a stored run. Nothing there touches the user's branches,
index or working tree, and every refusal (``UserError``) happens before the first change.
Their git work goes through :class:`conductor.git.workspace.Workspace`.
"""

from __future__ import annotations

from conductor.errors import UserError
from conductor.state.records import RunRow
from conductor.state.store import Store


def run_row(store: Store, run_id: str) -> RunRow:
    run = store.run(run_id)
    if run is None:
        raise UserError(f"no run `{run_id}`", hint="`conductor runs` lists them")
    return run
