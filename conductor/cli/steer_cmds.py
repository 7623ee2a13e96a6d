"""Commands that steer a run from another terminal: resume, cancel, watch, progress."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from conductor.cli.app import command
from conductor.cli.run_cmds import make_sink, spawn_runner
from conductor.cli.state import open_here, pick_run
from conductor.errors import EXIT_OK, UserError
from conductor.state.store import Row, Store

RUN_ARG = typer.Argument(..., help="Run id or prefix.", metavar="RUN", show_default=False)
TERMINAL_RUN = ("succeeded", "failed", "cancelled", "interrupted")


def _workspace(store: Store):  # type: ignore[no-untyped-def]
    from conductor.git.workspace import Workspace

    return Workspace(store.path.parent.parent)


@command("resume")
def resume_cmd(
    run: str = RUN_ARG,
    detach: bool = typer.Option(False, "--detach", "-d", help="Resume in the background."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only failures and the summary."),
) -> None:
    """Finish an interrupted or cancelled run without redoing finished tasks."""
    from conductor.run.start import drive
    from conductor.state.liveness import is_live

    with open_here() as store:
        row = pick_run(store, run)
        if row["state"] == "succeeded":
            typer.echo(f"run {row['id']} already succeeded: nothing to resume")
            raise typer.Exit(EXIT_OK)
        if is_live(store.path.parent, row):
            raise UserError(f"run {row['id']} is still running",
                            hint=f"watch it with `conductor watch {row['id']}`")  # fmt: skip
        ws = _workspace(store)
        if detach:
            store.update_run(row["id"], state="running", pid=None, heartbeat=time.time())
            spawn_runner(ws.root, ws.state_dir, row["id"])
            typer.echo(row["id"])
            return
        _final, code = drive(ws, store, row["id"], [make_sink(as_json, quiet)], os.environ)
    raise typer.Exit(code)


@command("_drive", hidden=True)
def drive_cmd(run: str = RUN_ARG) -> None:
    """The background runner behind `run --detach` (not for people)."""
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
    from conductor.state.liveness import is_live

    with open_here() as store:
        row = pick_run(store, run)
        if row["state"] in ("succeeded", "failed", "cancelled"):
            raise UserError(f"run {row['id']} already ended ({row['state']})")
        live = is_live(store.path.parent, row)
        if task is not None:
            _cancel_task(store, row, task, live)
        elif live:
            store.update_run(row["id"], state="cancelling")
        else:
            _cancel_dead_run(store, row)
        if live and wait and task is None:
            _wait_end(store, row["id"])
        final = store.run(row["id"])
    assert final is not None
    typer.echo(f"run {row['id']}: {final['state']}" + (f" (task {task} cancelled)" if task else ""))


def _cancel_task(store: Store, row: Row, task: str, live: bool) -> None:
    t = store.task(row["id"], task)
    if t is None:
        raise UserError(f"run {row['id']} has no task `{task}`")
    if t["state"] in ("succeeded", "failed", "blocked", "skipped", "cancelled"):
        raise UserError(f"task {task} already ended ({t['state']})")
    store.update_task(row["id"], task, state="cancelling" if live else "cancelled")


def _cancel_dead_run(store: Store, row: Row) -> None:
    """No runner: record the cancellation directly (resume still picks it up)."""
    for t in store.tasks(row["id"]):
        if t["state"] not in ("succeeded", "failed", "blocked", "skipped"):
            store.update_task(row["id"], t["task_id"], state="cancelled")
    store.update_run(row["id"], state="cancelled", finished=time.time())
    store.emit(row["id"], "run_finished", None, "info", state="cancelled")


def _wait_end(store: Store, run_id: str, timeout_s: float = 120.0) -> None:
    from conductor.state.liveness import is_live

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = store.run(run_id)
        if row is None or not is_live(store.path.parent, row):
            return
        time.sleep(0.2)


@command("watch")
def watch_cmd(
    run: str | None = typer.Argument(None, help="Run id or prefix (default: the newest)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event."),
) -> None:
    """Follow a run live until it ends."""

    with open_here() as store:
        row = pick_run(store, run)
        with _watch_display(store, row, as_json) as sink:
            _follow(store, row, sink)


@contextmanager
def _watch_display(store: Store, row: Row, as_json: bool) -> Iterator[Any]:
    """The live view on a terminal (it needs the workflow's graph), else plain lines."""
    import sys

    if as_json or not sys.stdout.isatty():
        yield make_sink(as_json)
        return
    from conductor.console.live import display
    from conductor.run.start import replan

    try:
        _wf, plan = replan(_workspace(store), row)
    except UserError:  # the workflow file changed or is gone: plain lines still work
        yield make_sink(False)
        return
    with display(plan) as sink:
        yield sink


def _follow(store: Store, row: Row, sink: Any) -> None:
    from conductor.state.liveness import is_live, shown_state

    cursor = 0
    while True:
        rows = store.events(row["id"], after=cursor)
        for e in rows:
            sink(e)
            cursor = e["id"]
        current = store.run(row["id"])
        assert current is not None
        if not rows and not is_live(store.path.parent, current):
            if shown_state(store.path.parent, current) == "interrupted":
                typer.echo(f"run {row['id']} is interrupted: `conductor resume {row['id']}`",
                           err=True)  # fmt: skip
            return
        time.sleep(0.3 if rows else 0.5)


@command("progress")
def progress_cmd(
    percent: float = typer.Argument(..., help="0 to 100."),
    message: str | None = typer.Argument(None, help="What the task is doing now."),
) -> None:
    """Report progress from inside a task (uses the environment conductor set)."""
    if not 0 <= percent <= 100:
        raise UserError(f"progress must be between 0 and 100, not {percent:g}")
    env = {k: os.environ.get(k) for k in
           ("CONDUCTOR_STATE_DIR", "CONDUCTOR_RUN_ID", "CONDUCTOR_TASK_ID")}  # fmt: skip
    missing = [k for k, v in env.items() if not v]
    if missing:
        raise UserError("not inside a conductor task (" + ", ".join(missing) + " not set)",
                        hint="conductor sets these for every task it runs")  # fmt: skip
    run_id, task_id = env["CONDUCTOR_RUN_ID"] or "", env["CONDUCTOR_TASK_ID"] or ""
    with Store(Path(env["CONDUCTOR_STATE_DIR"] or ".") / "state.db") as store:
        if store.task(run_id, task_id) is None:
            raise UserError(f"run {run_id} has no task `{task_id}`")
        store.update_task(run_id, task_id, progress=percent, step=message)
        store.emit(run_id, "task_progress", task_id, "info", percent=percent, message=message)
