"""Commands that run or look at runs: run, status, runs, logs."""

from __future__ import annotations

import json
import os
from typing import Any

import typer

from conductor.cli.app import command
from conductor.cli.inspect_cmds import (
    DEPS_OPT,
    GROUP_OPT,
    JSON_OPT,
    TASK_OPT,
    WORKFLOW,
    load,
    make,
    plan_text,
)
from conductor.cli.state import open_here, pick_run
from conductor.cli.webopts import WEB_OPT, check_web, page_alongside
from conductor.errors import SpecError, UserError
from conductor.state.records import EventRow


@command("run")
def run_cmd(
    workflow: str = WORKFLOW,
    batch_group: list[str] | None = GROUP_OPT,
    task: list[str] | None = TASK_OPT,
    with_deps: bool = DEPS_OPT,
    validate_only: bool = typer.Option(
        False, "--validate-only", help="Dry run: plan and preflight checks only."
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-j", min=1, help="Tasks at once (overrides the file)."
    ),
    strategy: str | None = typer.Option(
        None, "--strategy", help="Wave by wave (waves) or as soon as deps are done (eager)."
    ),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Stop dispatching after a failure."),
    force: bool = typer.Option(False, "--force", help="Rerun tasks that are up to date."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only failures and the summary."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Every check, too."),
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Run in the background; print the run id and return."
    ),
    from_: list[str] | None = typer.Option(
        None, "--from", help="Rerun TASK and everything downstream of it (repeatable)."
    ),
    no_color: bool = typer.Option(False, "--no-color", help="No colours (NO_COLOR works too)."),
    adopt_branch: bool = typer.Option(
        False,
        "--adopt-branch",
        help="Let conductor take over an existing integration branch it did not create "
        "(never one that is checked out).",
    ),
    auto_approve: bool = typer.Option(
        False, "--auto-approve", help="Merge `approve: true` tasks without waiting (CI)."
    ),
    web: bool = WEB_OPT,
) -> None:
    """Run the workflow (or the selected part of it)."""
    if strategy not in (None, "waves", "eager"):
        raise UserError(f"unknown strategy `{strategy}`", hint="use --strategy waves or eager")
    wf = load(workflow)
    verbosity = "quiet" if quiet else "verbose" if verbose else None
    flags = {"concurrency": concurrency, "strategy": strategy, "verbosity": verbosity,
             "color": "never" if no_color else None}  # fmt: skip
    from conductor.spec.config import configured, run_settings

    wf, cfg = configured(wf, flags, os.environ)
    if from_:
        from conductor.plan.graph import rerun_from

        task, force = rerun_from(wf, from_, task or []), True
    plan = make(wf, batch_group, task, with_deps, cfg.concurrency)
    if validate_only:
        _dry_run(plan, as_json, adopt_branch)
        return
    from conductor.run.start import RunOptions, drive, prepare

    opts = RunOptions(
        strategy=cfg.strategy,
        concurrency=cfg.concurrency,
        fail_fast=fail_fast,
        force=force,
        selection={"groups": batch_group or [], "tasks": task or [], "with_deps": with_deps},
        adopt_branch=adopt_branch,
        auto_approve=auto_approve,
        detach=detach,
    )
    check_web(web, detach)
    prep = prepare(wf, plan, opts, os.environ)
    try:
        if detach:
            typer.echo(prep.run_id)
            typer.echo(f"running in the background: `conductor watch {prep.run_id}`", err=True)
            from conductor.run.launch import hand_over

            hand_over(prep.store, prep.ws.root, prep.run_id)
        from conductor.console.sinks import display

        shown = display(plan, as_json=as_json, color=cfg.color, emoji=cfg.emoji,
                        verbosity=cfg.verbosity)  # fmt: skip
        with page_alongside(web, prep.store.path, prep.run_id), shown as sink:
            _final, code = drive(prep.ws, prep.store, prep.run_id, [sink], os.environ, wf, plan,
                                 settings=run_settings(cfg))  # fmt: skip
    finally:
        prep.store.close()
    raise typer.Exit(code)


def _dry_run(plan: Any, as_json: bool, adopt_branch: bool) -> None:
    from conductor.plan.planner import plan_to_json
    from conductor.run.preflight import preview

    seen = preview(plan, os.environ, adopt_branch=adopt_branch)
    if as_json:
        doc = plan_to_json(plan)
        doc["preflight"] = [{"message": p.message, "hint": p.hint} for p in seen.problems]
        doc["skip"] = seen.skips
        doc["agents"] = seen.versions
        doc["sandboxes"] = seen.sandboxes
        typer.echo(json.dumps(doc, indent=2))
    else:
        typer.echo(plan_text(plan, seen.skips))
        for name, version in seen.versions.items():
            typer.echo(f"agent {name}: {version}")
        for box in seen.sandboxes:
            typer.echo(f"sandbox of {box['agent']} ({', '.join(box['tasks'])}): {box['policy']}")
    if seen.problems:
        raise SpecError(seen.problems)
    if not as_json:
        typer.echo("\npreflight ok: nothing was run (--validate-only)")


@command("status")
def status_cmd(
    run: str | None = typer.Argument(None, help="Run id or prefix (default: the newest)."),
    task: str | None = typer.Option(None, "--task", "-t", help="Only this task."),
    alerts: bool = typer.Option(False, "--alerts", help="Only warnings and errors."),
    recent: int = typer.Option(0, "--recent", "-n", help="Also the last N events."),
    as_json: bool = JSON_OPT,
) -> None:
    """Where a run stands: per-task state, attempts, elapsed time."""
    from conductor.report.status import status_doc

    with open_here() as store:
        row = pick_run(store, run)
        doc = status_doc(store, row)
        if task is not None:
            doc["tasks"] = [t for t in doc["tasks"] if t["id"] == task]
            if not doc["tasks"]:
                raise UserError(f"run {row['id']} has no task `{task}`")
            doc["gates"] = []  # one task asked for: no group's gate
        levels = ("warning", "error") if alerts else ()
        events = (
            store.events(
                row["id"], levels=levels, limit=recent or (50 if alerts else 0), newest=True
            )
            if (recent or alerts)
            else []
        )
    if as_json:
        doc["events"] = events
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    if _tty():
        from conductor.console.palette import make_console
        from conductor.console.plain import describe
        from conductor.console.tables import render_status_table

        console = make_console()
        console.print(render_status_table(doc, no_color=_no_color()))
        _waiting_note(doc, lambda text: console.print(text, markup=False))
        if doc["run"]["state"] == "interrupted":
            console.print(f"runner gone: `conductor resume {doc['run']['id']}`")
        for e in events:
            console.print(f"  [{e['level']}] {describe(e)}", markup=False)
        return
    _print_status(doc, events)


def _waiting_note(doc: dict[str, Any], out: Any) -> None:
    from conductor.cli.approve_cmds import waiting_note

    note = waiting_note(doc["run"])
    if note:
        out(note)


def _tty() -> bool:
    import sys

    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def _no_color() -> bool:
    """NO_COLOR: no colour and no bold either, the table as a pipe gets it."""
    return bool(os.environ.get("NO_COLOR"))


def _print_status(doc: dict[str, Any], events: list[EventRow]) -> None:
    from conductor.console.columns import show, terminal_width
    from conductor.console.plain import describe
    from conductor.console.statusview import status_lines

    r = doc["run"]
    typer.echo(show(status_lines(doc, terminal_width())))
    if r["state"] == "interrupted":
        typer.echo(f"runner gone: `conductor resume {r['id']}`")
    _waiting_note(doc, typer.echo)
    for e in events:
        typer.echo(f"  [{e['level']}] {describe(e)}")


@command("runs")
def runs_cmd(
    as_json: bool = JSON_OPT, limit: int = typer.Option(20, "--limit", help="How many runs.")
) -> None:
    """Run history, newest first."""
    from conductor.report.status import run_doc

    with open_here() as store:
        docs = [run_doc(store, r) for r in store.runs(limit=limit)]
    if as_json:
        typer.echo(json.dumps({"runs": docs}, indent=2))
        return
    if _tty():
        from conductor.console.palette import make_console
        from conductor.console.tables import render_runs_table

        make_console().print(render_runs_table(docs, no_color=_no_color()))
        return
    from conductor.console.columns import show, terminal_width
    from conductor.console.statusview import runs_lines

    typer.echo(show(runs_lines(docs, terminal_width())) if docs else "no runs recorded yet")


@command("logs")
def logs_cmd(
    run: str = typer.Argument(..., help="Run id or prefix."),
    task: str = typer.Argument(..., help="Task id."),
    attempt: int | None = typer.Option(None, "--attempt", "-a", help="Attempt number."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new output."),
) -> None:
    """Print a task attempt's agent output."""
    import sys

    from conductor.ops.follow import attempt_finished, copy_log, log_of, pick_attempt

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    with open_here() as store:
        row = pick_run(store, run)
        pick = pick_attempt(store, row["id"], task, attempt)
        n = pick["n"]
        # a terminal sees escapes shown escaped; a pipe (`logs | cat`) gets the bytes
        copy_log(log_of(pick), write, follow,
                 lambda: attempt_finished(store, row["id"], task, n),
                 escape=sys.stdout.isatty())  # fmt: skip
