"""`conductor status` and `conductor runs` on a terminal, through rich.

The tables are laid out by console/statusview.py (the same as on a pipe) at the width
rich renders them, with the same state icons and colours as the live view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.text import Text

from conductor.console.columns import Line
from conductor.console.palette import Palette
from conductor.console.poolboard import pool_lines
from conductor.console.statusview import failure_lines, head_lines, runs_lines, table_lines


def render_status_table(
    doc: Mapping[str, Any], *, emoji: bool = True, no_color: bool = False
) -> RenderableType:
    """`conductor status`: the run line, counts, a row per task and gate, the failures."""
    p = Palette(emoji, no_color)
    head, counts = (Fitted(_fixed(ln), p) for ln in head_lines(doc, emoji))
    table = Fitted(lambda w: table_lines(doc, w, emoji) + failure_lines(doc, w), p)
    pools = pool_lines(doc.get("pools") or [], p)  # none for a run with only `local`
    return Group(head, counts, *pools, table)


def render_runs_table(
    runs: Sequence[Mapping[str, Any]], *, emoji: bool = True, no_color: bool = False
) -> RenderableType:
    """`conductor runs`: one row per run (the `run` part of `status_doc`)."""
    return Fitted(lambda w: runs_lines(runs, w, emoji), Palette(emoji, no_color))


def _fixed(line: Line) -> Callable[[int], list[Line]]:
    return lambda _width: [line]


class Fitted:
    """Lines laid out (console/columns.py) for the width rich renders them at."""

    def __init__(self, lay_out: Callable[[int], list[Line]], palette: Palette) -> None:
        self.lay_out, self.palette = lay_out, palette

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lay_out(options.max_width):
            text = Text(no_wrap=True, overflow="ellipsis")
            for part, style in line:
                text.append(part, style=self.palette.style(style) if style else "")
            text.rstrip()
            yield text
