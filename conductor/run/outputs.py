"""Outputs between tasks: each attempt's `$CONDUCTOR_OUTPUT` file read into the store, and
what a starting task may know of the tasks before it (their state and their outputs).

The file lives in the attempt's worktree at ``.conductor/output``, beside the progress spool
(``conductor.state.spool``): the worktree is the one place every agent's sandbox lets it
write (Codex's, and ours, keep the state directory read-only), and ``.conductor/`` is in the
repository's ``info/exclude``, so the file is never committed. It is created empty before
the agent starts and removed once read: what it held may be a secret, and only the masked
copy in the attempt's ``outputs`` column is kept.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conductor.run.outfile import OutputFileError, read_output_file
from conductor.run.uptodate import was_up_to_date
from conductor.state.values import outputs_of

if TYPE_CHECKING:
    from conductor.run.context import RunContext
    from conductor.spec.model import Task
    from conductor.state.records import AttemptRow

OUTPUT_ENV = "CONDUCTOR_OUTPUT"  # the variable that names the file, as GITHUB_OUTPUT does
OUTPUT = (".conductor", "output")  # under the attempt's worktree


def output_path(worktree: Path) -> Path:
    return Path(worktree).joinpath(*OUTPUT)


def fresh_file(worktree: Path) -> Path:
    """The attempt's output file, empty (a retry never sees an earlier attempt's values)."""
    path = output_path(worktree)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a symlink left in a reused worktree is replaced, never written through
    path.write_bytes(b"")
    return path


def collect(ctx: RunContext, task: Task, n: int, worktree: Path) -> str | None:
    """Read the attempt's output file into its ``outputs`` column (masked); what is wrong
    with it, or None. A declared key (``output_keys``) the task did not write is wrong."""
    path = output_path(worktree)
    try:
        values = read_output_file(path)
    except OutputFileError as exc:
        return str(exc)
    except OSError as exc:
        return f"$CONDUCTOR_OUTPUT could not be read: {exc.strerror or exc}"
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):  # tidy when the progress spool is gone too
            path.parent.rmdir()
    return record(ctx, task, n, values)


def record(ctx: RunContext, task: Task, n: int, values: dict[str, str]) -> str | None:
    """Store the values attempt ``n`` wrote (masked; read here or on a remote worker);
    what is wrong with them, or None."""
    redact = ctx.secrets.redact
    masked = {key: redact(value) for key, value in values.items()}
    if masked:
        ctx.store.update_attempt(ctx.run_id, task.id, n, outputs=json.dumps(masked))
    missing = [key for key in task.output_keys if key not in values]
    if missing:
        names = ", ".join(f"`{key}`" for key in missing)
        return f"declared output {names} not written to $CONDUCTOR_OUTPUT (see `output_keys`)"
    return None


@dataclass(frozen=True)
class Produced:
    """What one task is, seen from a task starting after it in this run."""

    task_id: str
    # succeeded (in this run, or up to date from an earlier one), failed, skipped (by its
    # `when:` or its trigger rule), blocked, cancelled; pending etc. while it has not settled
    state: str
    outputs: dict[str, str] = field(default_factory=dict)
    # the run whose work it is (None: not run by conductor) and that run's attempts of it,
    # for the summary of what it changed: read once with the outputs
    run_id: str | None = None
    attempts: tuple[AttemptRow, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"


def produced(ctx: RunContext, task_id: str) -> Produced:
    """The task's state in this run and the outputs dependents get from it: those of the
    attempt that produced its merged work, which for a task that was up to date is an
    attempt of an earlier run; of a failed task, its last attempt's."""
    store = ctx.store
    row = store.task(ctx.run_id, task_id)
    if row is None or was_up_to_date(row):  # not selected (so up to date), or skipped as such
        done = store.last_success(ctx.wf.name, task_id)
        if done is None:
            return Produced(task_id, "succeeded")
        atts = store.attempts(done["run_id"], task_id)
        return Produced(task_id, "succeeded", _last(atts), done["run_id"], tuple(atts))
    state = str(row["state"])
    if state == "succeeded":
        atts = store.attempts(ctx.run_id, task_id)
        return Produced(task_id, state, _last(atts), ctx.run_id, tuple(atts))
    if state == "failed":
        return Produced(task_id, state, _last(store.attempts(ctx.run_id, task_id), ok=False))
    return Produced(task_id, state)


def _last(attempts: list[AttemptRow], ok: bool = True) -> dict[str, str]:
    """The outputs of the newest succeeded attempt (of the newest at all, when not ``ok``)."""
    chosen = [a for a in attempts if a["state"] == "succeeded" or not ok]
    return outputs_of(chosen[-1]) if chosen else {}


def upstream(ctx: RunContext, task: Task) -> dict[str, Produced]:
    """Each dependency as the task starting now sees it (one read of the store each)."""
    return {dep: produced(ctx, dep) for dep in task.deps}


def upstream_values(seen: dict[str, Produced]) -> dict[str, dict[str, str]]:
    """What the task's dependencies wrote, for its instructions (those that wrote any)."""
    return {dep: p.outputs for dep, p in seen.items() if p.outputs}
