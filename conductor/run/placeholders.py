"""Filling in a task's `{{ tasks.… }}` and `{{ env.… }}` placeholders when it starts.

`{{ matrix.… }}` is filled in when the file is loaded (each expansion is a task of its
own); what upstream tasks produced is known only now, and so is the environment. Filled
in: title, prompt, the prompt file's text, run and env values.

- ``tasks.<id>.outputs.<key>``: the value the task wrote (masked if it held a secret).
  A key a task that succeeded did not write fails this task, naming both tasks and the
  key (not retried: the next attempt would find the same). A task that did not succeed
  (it failed, was skipped or blocked, and this one runs by its trigger rule) gives ''.
- ``tasks.<id>.state``: succeeded (in this run, or up to date), failed, skipped, blocked
  or cancelled.
- ``env.<NAME>``: conductor's environment with the task's own ``env`` on top; a secret
  value is filled in as ``***`` (text reaches files and agents' providers: use ``$NAME``
  in a command instead). An unset variable fails the task.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from conductor.agents.briefing import read_prompt_file
from conductor.errors import Rejected
from conductor.run.outputs import Produced, produced
from conductor.spec.template import Ref, TemplateError, render

if TYPE_CHECKING:
    from conductor.run.context import RunContext
    from conductor.spec.model import Task

ROOTS = ("tasks", "env")


class _Missing(Exception):
    """A placeholder with no value: the message says whose and which."""


class _Values:
    """Looks placeholders up for one starting task, each upstream task once."""

    def __init__(self, ctx: RunContext, task: Task) -> None:
        self.ctx, self.task = ctx, task
        self.seen: dict[str, Produced] = {}
        self.env = {**ctx.base_env, **{k: ctx.secrets.expand(v) for k, v in task.env.items()}}

    def __call__(self, ref: Ref) -> str:
        if ref.root == "env":
            got = self.env.get(ref.name)
            if got is None:
                raise _Missing(f"`{{{{ {ref.text} }}}}`: variable {ref.name} is not set")
            return self.ctx.secrets.redact(got)
        seen = self.seen.get(ref.name)
        if seen is None:
            seen = self.seen[ref.name] = produced(self.ctx, ref.name)
        if ref.key is None:
            return seen.state
        value = seen.outputs.get(ref.key)
        if value is not None:
            return value
        if not seen.succeeded:
            return ""
        wrote = ", ".join(f"`{k}`" for k in seen.outputs) or "none"
        raise _Missing(
            f"task {self.task.id} reads output `{ref.key}` of task {ref.name}, which "
            f"{ref.name} did not write to $CONDUCTOR_OUTPUT (it wrote: {wrote})"
        )


def fill(ctx: RunContext, task: Task) -> Task:
    """``task`` with its placeholders filled in; Rejected (not retried) when one cannot be."""
    if not _has_placeholders(ctx, task):
        return task
    values = _Values(ctx, task)

    def one(text: str) -> str:
        return render(text, values, ROOTS)

    try:
        changes: dict[str, object] = {
            "title": one(task.title),
            "env": {k: one(v) for k, v in task.env.items()},
        }
        if task.run is not None:
            changes["run"] = one(task.run)
        if task.prompt is not None:
            changes["prompt"] = one(task.prompt)
        elif task.prompt_file:  # its text, filled in, becomes the prompt
            changes.update(prompt=one(read_prompt_file(ctx.wf, task)), prompt_file=None)
    except (_Missing, TemplateError) as exc:
        raise Rejected(f"cannot start: {exc}", retriable=False) from None
    return dataclasses.replace(task, **changes)  # type: ignore[arg-type]


def _has_placeholders(ctx: RunContext, task: Task) -> bool:
    texts = [task.title, task.prompt or "", task.run or "", *task.env.values()]
    if task.prompt_file:
        texts.append(read_prompt_file(ctx.wf, task))
    return any("{{" in t for t in texts)
