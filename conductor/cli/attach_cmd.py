"""`conductor attach RUN TASK`: put a person's terminal on a tmux-driven agent's session."""

from __future__ import annotations

import typer

from conductor.cli.app import command


@command("attach")
def attach_cmd(
    run: str = typer.Argument(
        ..., metavar="RUN", help="Run id or unique prefix (`latest` for the newest)."
    ),
    task: str = typer.Argument(..., metavar="TASK", help="The task whose agent to attach to."),
    attempt: int | None = typer.Option(
        None, "--attempt", "-a", min=1, help="Attempt number (default: the latest)."
    ),
) -> None:
    """Attach your terminal to the tmux session of a task's agent (executor: tmux).

    Detach again with C-b d; the agent keeps running and conductor keeps driving it."""
    from conductor.cli.state import open_here, pick_run
    from conductor.exec.panes import become_attached
    from conductor.ops.attach import attach_target

    with open_here() as store:
        argv = attach_target(store, pick_run(store, run)["id"], task, attempt)
    become_attached(argv)
