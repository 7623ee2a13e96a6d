"""Choosing the sink a run reports to: JSON lines, the live view on a terminal, else
plain timestamped lines. Kept apart from the live view so that a run whose output is not a
terminal (CI, a pipe, a benchmark) never imports rich."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from conductor.plan.planner import Plan
    from conductor.state.events import Sink

# What makes rich treat a stream that is not a tty as a terminal anyway.
_FORCING = ("FORCE_COLOR", "TTY_INTERACTIVE", "TTY_COMPATIBLE")


def _surely_plain(color: str, file: TextIO | None) -> bool:
    """Not a terminal by any rule rich would apply: no need to ask rich."""
    if color == "always" or any(os.environ.get(v) for v in _FORCING):
        return False
    try:
        return not (file or sys.stdout).isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return True


@contextmanager
def display(
    plan: Plan,
    *,
    as_json: bool = False,
    color: str = "auto",
    emoji: bool = True,
    verbosity: str = "normal",
    file: TextIO | None = None,
) -> Iterator[Sink]:
    """The sink `run` and `demo` feed: JSON lines, the live view on a terminal, else plain
    timestamped lines. The live view is started on entry and stopped on exit."""
    from conductor.console.plain import JsonSink, PlainSink

    if as_json:
        yield JsonSink(file)
        return
    quiet, verbose = verbosity == "quiet", verbosity == "verbose"
    if quiet or _surely_plain(color, file):
        yield PlainSink(file, quiet=quiet, verbose=verbose)
        return
    from conductor.console.live import LiveView
    from conductor.console.palette import make_console

    console = make_console(color, file)
    if not console.is_terminal or console.is_dumb_terminal:
        yield PlainSink(file, quiet=quiet, verbose=verbose)
        return
    waves = {t: plan.wave_of(t) for t in plan.selected}
    view = LiveView(console, plan.workflow, plan.selected, waves, emoji=emoji,
                    no_color=color == "never", verbose=verbose)  # fmt: skip
    with view:
        yield view
