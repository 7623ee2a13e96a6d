"""Finding the state store from wherever the user stands, without starting git."""

from __future__ import annotations

from pathlib import Path

from conductor.cli.repo import chosen_repo
from conductor.errors import UserError
from conductor.state.layout import find_state_db
from conductor.state.records import RunRow
from conductor.state.store import Store


def open_here() -> Store:
    """The state store of the repository at hand: --repo, else the working directory."""
    where = chosen_repo()
    db = find_state_db(where or Path.cwd())
    if db is None:
        place = f"in {where}" if where else "here"
        raise UserError(
            f"no conductor runs {place} (no .conductor/state.db in that directory or above)",
            hint="start one with `conductor run WORKFLOW`"
            + ("" if where else ", or name the repository with --repo PATH"),
        )
    return Store(db)


def pick_run(store: Store, run: str | None) -> RunRow:
    """The run named by id or unique prefix, or the newest run."""
    if run is None or run == "latest":
        row = store.latest_run()
        if row is None:
            raise UserError("no runs recorded yet", hint="start one with `conductor run WORKFLOW`")
        return row
    rows = store.find_run(run)
    if len(rows) == 1:
        return rows[0]
    if not rows:
        known = [r["id"] for r in store.runs(limit=5)]
        raise UserError(f"no run `{run}`", hint="recent runs: " + (", ".join(known) or "none"))
    raise UserError(f"`{run}` matches {len(rows)} runs", hint="give more of the run id")
