"""Commands that steer runs after the fact: rollback, clean, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from conductor.cli.app import command
from conductor.cli.inspect_cmds import JSON_OPT
from conductor.cli.state import open_here, pick_run
from conductor.errors import UserError

if TYPE_CHECKING:
    from conductor.git.workspace import Workspace
    from conductor.state.store import Store

RUN_ARG = typer.Argument(..., help="Run id or unique prefix (`latest` for the newest).")


def _workspace(store: Store) -> Workspace:
    from conductor.git.workspace import Workspace

    return Workspace.discover(Path(store.path).parent.parent)  # <root>/.conductor/state.db


@command("rollback")
def rollback_cmd(
    run: str = RUN_ARG,
    task: str | None = typer.Option(
        None, "--task", "-t", help="Revert only this task's merge, with a revert commit."
    ),
    force: bool = typer.Option(
        False, "--force", help="Roll back even though later runs merged on top (drops them too)."
    ),
) -> None:
    """Undo a run on its integration branch.

    Moves the integration branch back to where it stood before RUN (compare-and-swap). The
    old head stays reachable from refs/conductor/rollback/RUN/TIME, printed together with
    the command that restores it. With --task T only T's merge is undone, by a revert
    commit carrying the trailers Conductor-Run, Conductor-Task and Conductor-Revert.

    Rolled-back tasks are no longer up to date: the next `conductor run` redoes them.
    Refused while a run on that branch is running, while the branch is checked out in a
    worktree, and (without --force) when later runs merged on top. Your own branches and
    working tree are never touched.
    """
    from conductor.ops.rollback import rollback_run, rollback_task

    if task is not None and force:
        raise UserError("--force applies to a whole-run rollback, not to --task")
    with open_here() as store:
        row = pick_run(store, run)
        ws = _workspace(store)
        if task is None:
            done = rollback_run(ws, store, row["id"], force=force)
        else:
            done = rollback_task(ws, store, row["id"], task)
    typer.echo(done.describe())


@command("clean")
def clean_cmd(
    dry_run: bool = typer.Option(
        False, "--dry-run", "-n", help="Only list what would be removed; change nothing."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Also remove worktrees with uncommitted changes and stray directories.",
    ),
    everything: bool = typer.Option(
        False,
        "--all",
        help="Also remove unmerged attempt branches of the latest runs and the refs that "
        "keep rolled-back heads reachable.",
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Remove worktrees, attempt branches and refs that no live run owns.

    By default clean removes: task and gate worktrees under .conductor/worktrees/ (but
    never one with uncommitted changes: it is kept and listed, with its branch and refs,
    unless --force); attempt branches (<integration>.attempts/<task>/<n>) whose work is
    merged or belongs to an older run; the refs/conductor/<run>/ refs of finished runs;
    then `git worktree prune`. It keeps the unmerged branches of failed or interrupted
    attempts of the latest run of each workflow (their work exists nowhere else) and the
    refs/conductor/rollback/ refs; --all removes those too. A run is live while its runner
    holds its lock or its heartbeat is under 30 s old; what it owns is never touched.
    """
    from conductor.cli.repo import repo_dir
    from conductor.git.workspace import Workspace
    from conductor.ops.clean import clean
    from conductor.state.store import Store

    ws = Workspace.discover(repo_dir())
    db = ws.state_dir / "state.db"
    store = Store(db) if db.is_file() else None
    try:
        report = clean(ws, store, dry_run=dry_run, force=force, everything=everything)
    finally:
        if store is not None:
            store.close()
    if as_json:
        doc = {
            "dry_run": report.dry_run,
            "removed": [{"kind": i.kind, "name": i.name} for i in report.removed],
            "kept": [{"kind": i.kind, "name": i.name, "why": i.why} for i in report.kept],
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    for line in report.lines():
        typer.echo(line)
    typer.echo(report.summary())


@command("export")
def export_cmd(
    run: str = RUN_ARG,
    fmt: str = typer.Option("json", "--format", "-f", help="json or markdown."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to FILE (atomically) instead of stdout."
    ),
) -> None:
    """Export a run's full record.

    json: one document {"format": "conductor-run", "version": 1, "run", "tasks",
    "attempts", "events"}. "run" holds the runs row (id, workflow, name, state, started,
    finished, pid, heartbeat, base_commit, integration_branch, options as an object,
    reason) plus "live"; "tasks" the task rows in file order (task_id, state, attempts,
    spec_hash, result_commit, merge_commit, error, cost_usd, ...); "attempts" every
    attempt (n, state, worktree, branch, pre_commit, post_commit, exit_code, error,
    files_changed, tokens, cost_usd, ...) with "checks" as the list of validator results
    ({name, ok, output, ...}) or null and "changed_files" as the list of paths its commit
    changed (null before it committed); "events" every event (id, ts, kind, level, task_id,
    data as an object). Times are Unix seconds.

    markdown: the execution log; when the workflow file no longer loads or no longer
    matches the run, a header and task table rendered from the state store alone.
    """
    from conductor.ops.export import export_markdown, export_record

    if fmt not in ("json", "markdown", "md"):
        raise UserError(f"unknown export format `{fmt}`", hint="use --format json or markdown")
    with open_here() as store:
        row = pick_run(store, run)
        if fmt == "json":
            doc = export_record(store, row["id"], Path(store.path).parent)
            text = json.dumps(doc, indent=2, default=str) + "\n"
        else:
            text = export_markdown(store, row["id"], Path(store.path).parent.parent)
    if output is None:
        typer.echo(text, nl=False)
        return
    from conductor.report.log import write_atomic

    write_atomic(output.absolute(), text)
    typer.echo(f"exported run {row['id']} to {output}", err=True)
