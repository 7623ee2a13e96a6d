"""`conductor attach RUN TASK`: put a person's terminal on a tmux-driven agent's session."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

from conductor.cli.app import command
from conductor.errors import UserError

if TYPE_CHECKING:
    from conductor.state.store import Store


def attach_target(store: Store, run: str | None, task: str, attempt: int | None) -> list[str]:
    """The tmux command that attaches to the task's attempt (the latest unless given)."""
    from conductor.cli.state import pick_run
    from conductor.exec import tmux

    run_id = pick_run(store, run)["id"]
    if store.task(run_id, task) is None:
        names = ", ".join(r["task_id"] for r in store.tasks(run_id)[:10])
        raise UserError(f"no task `{task}` in run {run_id}", hint=f"tasks: {names or 'none'}")
    numbers = [int(r["n"]) for r in store.attempts(run_id, task)]
    if not numbers:
        raise UserError(f"{task} has not started in run {run_id}")
    n = attempt if attempt is not None else max(numbers)
    if n not in numbers:
        raise UserError(f"{task} has no attempt {n} in run {run_id}",
                        hint="attempts: " + ", ".join(map(str, numbers)))  # fmt: skip
    if not tmux.session_exists(tmux.session_name(run_id, task, n)):
        raise UserError(
            f"no live tmux session for {task} (the agent runs with the local executor,"
            " or it has finished)",
            hint=f"see its output with `conductor logs {run_id} {task}`",
        )
    return tmux.attach_argv(run_id, task, n)


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
    from conductor.cli.state import open_here

    with open_here() as store:
        argv = attach_target(store, run, task, attempt)
    # tmux refuses to nest while $TMUX is set, but this session is on conductor's own server.
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    os.execvpe(argv[0], argv, env)
