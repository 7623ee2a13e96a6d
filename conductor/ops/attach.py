"""`conductor attach RUN TASK`: which tmux session a person's terminal should join."""

from __future__ import annotations

from conductor.errors import UserError
from conductor.exec import panes as tmux
from conductor.state.store import Store


def attach_target(store: Store, run_id: str, task: str, attempt: int | None) -> list[str]:
    """The tmux command that attaches to the task's attempt (the latest unless given)."""
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
