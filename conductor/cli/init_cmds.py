"""`conductor init [WORKFLOW] [--from PLAN.md] [--force]`: a workflow to start from."""

from __future__ import annotations

import os

import typer

from conductor.cli.app import command


@command("init")
def init_cmd(
    workflow: str | None = typer.Argument(
        None,
        help="Where to write it (default: workflows/<name>.yaml in the repository).",
        show_default=False,
    ),
    from_plan: str | None = typer.Option(
        None, "--from", help="Make it from a markdown checklist (## groups, - [ ] tasks)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite WORKFLOW if it exists."),
) -> None:
    """Write a starter workflow for this repository, or one from a checklist.

    The starter runs as written: an agent task (with the agent CLI found on PATH: claude,
    codex, gemini or aider) and a shell task after it. With --from PLAN.md, each `##`
    heading is a group and each `- [ ] Id: title` item a task: text indented under it is
    its prompt, `(after: A, B)` its dependencies, `(4h)` its estimate; checked items are
    done and left out. `.conductor/` is added to the repository's info/exclude. Outside a
    git repository, over an existing file (without --force), or on a checklist it cannot
    read, nothing is written (exit 2, with PLAN.md:LINE for each problem).
    """
    from conductor.cli.repo import repo_dir
    from conductor.ops.init import init

    made = init(repo_dir(), workflow, from_plan, force, os.environ)
    rel = os.path.relpath(made.path)
    shown = rel if not rel.startswith("..") else str(made.path)
    agents = ", ".join(made.found) or "none (shell tasks only)"
    typer.echo(f"wrote {shown}: workflow `{made.name}`, {made.tasks} task"
               f"{'s' * (made.tasks != 1)}; agent CLIs on PATH: {agents}")  # fmt: skip
    if made.done:
        typer.echo(f"left out, checked as done in the plan: {', '.join(made.done)}")
    typer.echo(f"next: conductor plan {shown}   then: conductor run {shown}")
