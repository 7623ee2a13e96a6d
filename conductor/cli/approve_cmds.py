"""Commands for approval before merge: approve, reject, and diff (what a task would merge)."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from conductor.cli.app import command
from conductor.cli.state import open_here, pick_run
from conductor.errors import UserError

RUN_ARG = typer.Argument(..., help="Run id or prefix.", metavar="RUN", show_default=False)


def waiting_note(run: dict[str, Any]) -> str | None:
    """`status`'s line for tasks held before their merge: the run waits for a person."""
    waiting = run.get("awaiting_approval") or []
    if not waiting:
        return None
    how = f"{run['id']} {waiting[0] if len(waiting) == 1 else 'TASK'}"
    return (
        f"awaiting approval: {', '.join(waiting)} (`conductor diff {how}`, then "
        f"`conductor approve {how}` or `conductor reject {how} -m WHY`)"
    )


def _when(live: bool, run_id: str) -> str:
    return "now" if live else f"when the run resumes: `conductor resume {run_id}`"


@command("approve")
def approve_cmd(
    run: str = RUN_ARG,
    target: str = typer.Argument(
        ...,
        metavar="TASK|GROUP",
        help="A task awaiting approval, or a group: all of its tasks awaiting approval.",
        show_default=False,
    ),
) -> None:
    """Let a task that awaits approval merge (a group: each of its waiting tasks)."""
    from conductor.ops.approve import approve

    with open_here() as store:
        row = pick_run(store, run)
        decision = approve(store, row, target)
    typer.echo(f"approved {', '.join(decision.tasks)}: merges {_when(decision.live, row['id'])}")


@command("reject")
def reject_cmd(
    run: str = RUN_ARG,
    task: str = typer.Argument(
        ..., metavar="TASK", help="A task awaiting approval.", show_default=False
    ),
    message: str | None = typer.Option(
        None,
        "--message",
        "-m",
        help="Feedback for the agent: the task is retried with it. Without one it fails.",
    ),
) -> None:
    """Turn down a task's change: retried with --message as feedback, or failed without."""
    from conductor.ops.approve import reject

    with open_here() as store:
        row = pick_run(store, run)
        decision = reject(store, row, task, message)
    what = "retried with your message" if (message or "").strip() else "fails (no retry)"
    typer.echo(f"rejected {task}: {what} {_when(decision.live, row['id'])}")


@command("diff")
def diff_cmd(
    run: str = RUN_ARG,
    task: str = typer.Argument(..., metavar="TASK", help="Task id.", show_default=False),
    attempt: int | None = typer.Option(
        None, "--attempt", "-a", help="Attempt number (default: the latest with a commit)."
    ),
    color: str = typer.Option("auto", "--color", help="auto | always | never."),
) -> None:
    """What a task would merge (its change against the integration head), or merged."""
    from conductor.ops.approve import task_patch

    if color not in ("auto", "always", "never"):
        raise UserError(f"unknown --color `{color}`", hint="use auto, always or never")
    with open_here() as store:
        patch = task_patch(store, pick_run(store, run), task, attempt)
    tty = sys.stdout.isatty() and os.environ.get("TERM") != "dumb"
    print(patch.what + ("" if patch.text else ": no changes"), file=sys.stderr)
    if not tty and color != "always":  # a pipe gets the patch as git wrote it
        sys.stdout.buffer.write(patch.text.encode("utf-8", "surrogateescape"))
        sys.stdout.flush()
        return
    from conductor.console.diffview import render

    colour = color == "always" or (color == "auto" and not os.environ.get("NO_COLOR"))
    sys.stdout.write(render(patch.text, colour))
    sys.stdout.flush()
