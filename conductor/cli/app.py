"""The typer app and the error guard every command runs under."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from conductor import __version__
from conductor.cli.help import DayCommand, DayGroup
from conductor.errors import EXIT_INTERRUPTED, ConductorError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="conductor",
    help="Run a DAG of AI coding agents, one git worktree per task.",
    cls=DayGroup,  # commands in the order of a user's day
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # plain help: rich costs ~80 ms of start-up on every --help
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"conductor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run a DAG of AI coding agents, one git worktree per task."""


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def guarded(fn: F) -> F:
    """Turn conductor's own errors into `message` + exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConductorError as exc:
            err(exc.render())
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """`@app.command` with the error guard applied."""

    def deco(fn: F) -> F:
        kwargs.setdefault("cls", DayCommand)  # typed placeholders in its help
        app.command(*args, **kwargs)(guarded(fn))
        return fn

    return deco


def main() -> None:
    app()
