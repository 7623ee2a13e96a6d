"""How `--help` reads: commands in the order of a user's day, typed placeholders.

typer lists commands in the order their modules registered them and writes placeholders
as `<str>`, `<int range>`, `{RUN}` or `[run]`. ``DayGroup`` lists the commands as a day
with conductor goes (write and check a workflow, run it, watch it, decide, tidy up);
``DayCommand`` names every placeholder for what it holds (WORKFLOW, RUN, TASK, GROUP, N)
and writes the usage line as `conductor logs [OPTIONS] RUN TASK`. Only typer is imported
here: `conductor --help` must stay fast.
"""

from __future__ import annotations

import re
from typing import Any

from typer import _click
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from conductor.cli.repo import WITHOUT, repo_option

# The order of a user's day; commands not named here (new ones) follow in their own order.
DAY = ("init", "validate", "plan", "list", "graph", "run", "status", "watch", "logs", "runs",
       "diff", "approve", "reject", "attach", "cancel", "resume", "rollback", "export",
       "clean", "serve", "metrics", "demo", "config", "progress")  # fmt: skip

# An option's placeholder by its parameter name; any other is its name in capitals.
METAVARS = {
    "task": "TASK", "batch_group": "GROUP", "from_": "TASK", "concurrency": "N",
    "recent": "N", "attempt": "N", "limit": "N", "port": "N", "strategy": "waves|eager",
    "fmt": "FORMAT", "output": "FILE", "message": "TEXT", "color": "auto|always|never",
    "repo": "PATH", "host": "HOST", "from_plan": "PLAN.md",
}  # fmt: skip
COMPLETES = frozenset({"WORKFLOW", "RUN", "TASK", "TASK|GROUP"})  # cli/complete.py
_RANGE = re.compile(r"\[x>=(\d+)\]")


class DayCommand(TyperCommand):
    """A command whose help names its placeholders (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.name not in WITHOUT and all(p.name != "repo" for p in self.params):
            workflow = any(p.name == "workflow" for p in self.params)
            self.params.append(repo_option(workflow))  # cli/repo.py
        for p in self.params:
            if p.metavar is None and p.name is not None:
                p.metavar = _metavar(p)
            if p.metavar in COMPLETES and p._custom_shell_complete is None:
                p._custom_shell_complete = _completer(p.metavar)

    def collect_usage_pieces(self, ctx: _click.Context) -> list[str]:
        """``[OPTIONS] RUN TASK`` (optional arguments in brackets), not ``{run} {task}``."""
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if isinstance(p, TyperArgument):
                name = (p.metavar or (p.name or "").upper()).strip("[]")
                pieces.append(name if p.required else f"[{name}]")
        return pieces

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        super().format_help(ctx, formatter)
        # `[x>=1]` is how click states a bound; people read "at least 1"
        formatter.buffer[:] = [_RANGE.sub(r"[at least \1]", s) for s in formatter.buffer]


def _metavar(p: _click.Parameter) -> str | None:
    if isinstance(p, TyperOption):
        if p.is_flag or p.count:
            return None
        return METAVARS.get(p.name or "", (p.name or "").upper())
    return (p.name or "").upper()


def _completer(metavar: str) -> Any:
    """The completion of a placeholder, imported only when the shell asks for it."""

    def complete(ctx: _click.Context, param: _click.Parameter, incomplete: str) -> list[str]:
        from conductor.cli.complete import BY_METAVAR

        return BY_METAVAR[metavar](ctx, param, incomplete)

    return complete


class DayGroup(TyperGroup):
    """The `conductor` command: its subcommands in the order of a user's day."""

    def list_commands(self, ctx: _click.Context) -> list[str]:
        names = list(self.commands)
        known = [n for n in DAY if n in self.commands]
        return known + [n for n in names if n not in DAY]
