"""The instructions file an agent reads: the markdown sections built from its task.

What to do (the prompt, the prompt file or the shell command), how the work is checked,
its file scope, the work done upstream, the previous attempt's failure or a merge
conflict, and how to work in the worktree. Text that comes from users or agents is fenced
with more backticks than it contains, so it cannot close its block early.
``profiles.instructions`` puts the sections together.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from conductor.errors import UserError
from conductor.git import refs
from conductor.spec.matrix import fill
from conductor.spec.model import Task, Workflow

if TYPE_CHECKING:
    from conductor.agents.profiles import InstructionContext

def _fence(text: str, info: str = "text") -> str:
    """A code fence longer than any backtick run inside ``text``, so it cannot break out."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    bar = "`" * max(3, longest + 1)
    return f"{bar}{info}\n{text.rstrip()}\n{bar}"


def read_prompt_file(wf: Workflow, task: Task) -> str:
    """The prompt file's text, its `{{ matrix.<key> }}` filled in for a fan-out task."""
    path = wf.source_dir / str(task.prompt_file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read prompt_file of task {task.id}: {exc}") from exc
    return fill(text, task.matrix) if task.matrix else text


def _task_text(wf: Workflow, task: Task) -> str:
    if task.prompt_file:
        return read_prompt_file(wf, task).strip()
    if task.prompt:
        return task.prompt.strip()
    if task.run:
        return "Run this shell command:\n\n" + _fence(task.run, "sh")
    return "(no prompt was given; make the change the title describes)"


def _code(text: str) -> str:
    """Inline code that survives backticks inside ``text``."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def _checks_section(wf: Workflow, task: Task) -> list[str]:
    out: list[str] = []
    checks = [_code("exists: " + ", ".join(task.outputs)) + " (the required outputs)"]
    checks = checks if task.outputs else []
    checks += [_code(v.describe()) for v in task.validate]
    if checks:
        out += [
            "## How your work is checked",
            "After you exit, these checks run in your worktree; all must pass:",
            _bullets(checks),
        ]
    group = wf.groups.get(task.group) if task.group else None
    if group is not None and group.validate:
        out += [
            f"Once every task of group {group.id} is merged, these run on the result:",
            _bullets([_code(v.describe()) for v in group.validate]),
        ]
    return out


def _context_sections(task: Task, ctx: InstructionContext) -> list[str]:
    out: list[str] = []
    if task.touches:
        scope = ", ".join(_code(t) for t in task.touches)
        out += [
            "## Scope",
            f"Change only files matching {scope}. A change to any other file fails the task.",
        ]
    if ctx.upstream:
        lines = [
            f"{tid}" + (f" ({title})" if title else "") + f": {summary}"
            for tid, title, summary in ctx.upstream
        ]
        out += [
            "## Work done before you",
            "These tasks finished first; the work of those that succeeded is already in "
            "your worktree:",
            _bullets(lines),
        ]
    out += _values_section(ctx.values)
    if ctx.previous_failure:
        out += [
            "## The previous attempt failed",
            "Fix what this output shows (verbatim):",
            _fence(ctx.previous_failure),
        ]
    if ctx.conflict:
        out += ["## Merge conflict", ctx.conflict]
    if ctx.feedback:
        out += [
            "## Reviewer feedback",
            "A reviewer looked at the change of your previous attempt and rejected it with "
            "this message (verbatim); address it:",
            _fence(ctx.feedback),
        ]
    return out


MAX_VALUE_SHOWN = 2000  # characters of one upstream value in the instructions


def _values_section(values: dict[str, dict[str, str]]) -> list[str]:
    """What upstream tasks wrote to $CONDUCTOR_OUTPUT, each value fenced (it is their text)."""
    items = [(tid, key, value) for tid, kv in values.items() for key, value in kv.items()]
    if not items:
        return []
    out = ["## Values from earlier tasks",
           "They wrote these to $CONDUCTOR_OUTPUT (`{{ tasks.<id>.outputs.<key> }}`):"]  # fmt: skip
    for tid, key, value in items:
        cut = value[:MAX_VALUE_SHOWN]
        more = f" ({len(value) - len(cut):,} more characters not shown)" if cut != value else ""
        out += [f"`tasks.{tid}.outputs.{key}`{more}:", _fence(cut)]
    return out


COMMITS_YOURSELF = ("You may commit; anything you leave uncommitted is committed for you "
                    "when you exit.")  # fmt: skip
# an agent whose sandbox cannot write to git (presets.can_commit) would only fail trying
COMMITTED_FOR_YOU = ("Do not run `git commit` or `git add`: your sandbox cannot write to git, "
                     "and conductor commits your changes when you finish.")  # fmt: skip


def _protocol(
    wf: Workflow, task: Task, ctx: InstructionContext, agent_commits: bool = True
) -> list[str]:
    branch = refs.attempt_branch(wf.integration_branch, ctx.run_id, task.id, ctx.attempt)
    return [
        "## How to work",
        _bullets(
            [
                f"Work in the current directory ({ctx.worktree}), "
                f"a git worktree on branch `{branch}`.",
                COMMITS_YOURSELF if agent_commits else COMMITTED_FOR_YOU,
                "Do not switch branches, rebase, or push.",
                "Report progress with `conductor progress PERCENT MESSAGE`, "
                'e.g. `conductor progress 50 "tests pass"`; where `conductor` is not on '
                'PATH (a login shell, a sandbox), `"$CONDUCTOR_BIN" progress 50 "tests pass"`.',
                "When the task is done, exit. Exiting is how you say you are finished.",
            ]
        ),
    ]

