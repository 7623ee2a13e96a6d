"""`--repo PATH`: the repository a command acts on.

By default a run happens in the repository that holds the workflow file, and the
commands that read runs (`status`, `logs`, `cancel`, …) look in the repository of the
working directory. ``--repo`` points either elsewhere: a workflow kept in one place runs
against another repository, and its runs are read from there. Every command that acts on
a repository gets the option from ``DayCommand`` (cli/help.py); what it chose is read
here by `load` (cli/inspect_cmds.py) and `open_here` (cli/state.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.core import TyperOption

HELP = "The repository to act on (default: the one holding WORKFLOW)."
HELP_RUNS = "The repository whose runs to read (default: the current one)."
# Commands that act on no repository (or take --repo as their own parameter).
WITHOUT = frozenset({"demo", "progress", "serve", "metrics", "_drive"})

_chosen: list[Path] = []  # one command per process: what its --repo said


def _remember(_ctx: Any, _param: Any, value: str | None) -> None:
    _chosen.clear()
    if value:
        _chosen.append(Path(value).expanduser().absolute())


def repo_option(with_workflow: bool) -> TyperOption:
    """The option; ``with_workflow``: the command takes a WORKFLOW (says its default)."""
    return TyperOption(param_decls=["--repo"], metavar="PATH", default=None,
                       help=HELP if with_workflow else HELP_RUNS, expose_value=False,
                       callback=_remember, is_eager=True)  # fmt: skip


def chosen_repo() -> Path | None:
    """The --repo of this command, None when it was not given."""
    return _chosen[0] if _chosen else None


def repo_dir() -> Path:
    """Where the store and the repository are looked for: --repo, else the working dir."""
    return chosen_repo() or Path.cwd()
