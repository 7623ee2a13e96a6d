"""Commands that steer a run from another terminal: resume, cancel, watch, progress."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from conductor.cli.app import command
from conductor.cli.state import open_here, pick_run
from conductor.cli.webopts import WEB_OPT, check_web, page_alongside
from conductor.errors import EXIT_OK, UserError

if TYPE_CHECKING:
    from conductor.git.workspace import Workspace
    from conductor.state.records import RunRow
    from conductor.state.store import Store

RUN_ARG = typer.Argument(..., help="Run id or prefix.", metavar="RUN", show_default=False)


def _workspace(store: Store) -> Workspace:
    from conductor.git.workspace import Workspace

    return Workspace(store.path.parent.parent)


@command("resume")
def resume_cmd(
    run: str = RUN_ARG,
    detach: bool = typer.Option(False, "--detach", "-d", help="Resume in the background."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only failures and the summary."),
    auto_approve: bool = typer.Option(
        False, "--auto-approve", help="Merge tasks awaiting approval, and later ones, at once."
    ),
) -> None:
    """Finish an interrupted or cancelled run without redoing finished tasks."""
    from conductor.console.plain import make_sink
    from conductor.run.launch import relaunch, resumable
    from conductor.run.start import drive

    with open_here() as store:
        row = pick_run(store, run)
        if not resumable(store, row):
            typer.echo(f"run {row['id']} already succeeded: nothing to resume")
            raise typer.Exit(EXIT_OK)
        ws = _workspace(store)
        if auto_approve:
            from conductor.ops.approve import allow_auto_approve

            allow_auto_approve(store, row)
        if detach:
            relaunch(store, ws.root, row["id"])
            typer.echo(row["id"])
            return
        _final, code = drive(ws, store, row["id"], [make_sink(as_json, quiet)], os.environ)
    raise typer.Exit(code)


@command("_drive", hidden=True)
def drive_cmd(run: str = RUN_ARG) -> None:
    """The background runner behind `run --detach` (not for people)."""
    from conductor.console.plain import make_sink
    from conductor.run.start import drive

    with open_here() as store:
        _final, code = drive(_workspace(store), store, run, [make_sink(False)], os.environ)
    raise typer.Exit(code)


@command("cancel")
def cancel_cmd(
    run: str = RUN_ARG,
    task: str | None = typer.Option(None, "--task", "-t", help="Cancel only this task."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the runner to stop."),
) -> None:
    """Stop a run (or one task): agents are stopped, their work committed."""
    from conductor.ops.steer import cancel

    with open_here() as store:
        row = pick_run(store, run)
        state = cancel(store, row, task, wait)
    typer.echo(f"run {row['id']}: {state}" + (f" (task {task} cancelled)" if task else ""))


@command("watch")
def watch_cmd(
    run: str | None = typer.Argument(None, help="Run id or prefix (default: the newest)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event."),
    web: bool = WEB_OPT,
) -> None:
    """Follow a run live until it ends; exit as `run` would have (0, 1, or 130)."""
    from conductor.ops.follow import follow
    from conductor.state.endings import exit_code

    check_web(web)
    with open_here() as store:
        row = pick_run(store, run)
        with page_alongside(web, store.path, row["id"]), \
                _watch_display(store, row, as_json) as sink:  # fmt: skip
            state = follow(store, row["id"], sink)
    if state == "interrupted":
        typer.echo(f"run {row['id']} is interrupted: `conductor resume {row['id']}`", err=True)
    raise typer.Exit(exit_code(state))


@contextmanager
def _watch_display(store: Store, row: RunRow, as_json: bool) -> Iterator[Any]:
    """The live view on a terminal (it needs the workflow's graph), else plain lines."""
    import sys

    from conductor.console.plain import make_sink

    if as_json or not sys.stdout.isatty():
        yield make_sink(as_json)
        return
    from conductor.console.sinks import display
    from conductor.run.start import replan

    try:
        _wf, plan, _settings = replan(_workspace(store), row, os.environ)
    except UserError:  # the workflow file changed or is gone: plain lines still work
        yield make_sink(False)
        return
    with display(plan) as sink:
        yield sink


@command("progress")
def progress_cmd(
    percent: float = typer.Argument(..., help="0 to 100."),
    message: str | None = typer.Argument(None, help="What the task is doing now."),
) -> None:
    """Report progress from inside a task (uses the environment conductor set)."""
    from conductor.ops.steer import report_progress

    report_progress(os.environ, percent, message)
