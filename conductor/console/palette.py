"""How states look on a terminal: icons, styles, compact durations and the console itself.

One table of states serves the live view and the `status` and `runs` tables, so that all
three agree. ``Palette`` turns colour and emoji off on request, and ``make_console``
builds the rich console for a ``--color`` choice.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.text import Text

from conductor.console.cells import STATES

# one table of states for the live view and every table (console/cells.py)


class Palette:
    """Icons and styles, with colour and emoji switched off on request (NO_COLOR, --no-color)."""

    def __init__(self, emoji: bool = True, no_color: bool = False) -> None:
        self.emoji = emoji
        self.no_color = no_color

    def style(self, style: str) -> str:
        # rich's own no_color drops colours but keeps bold/dim; an empty style emits nothing
        return "" if self.no_color else style

    def state(self, state: str, label: bool = True) -> Text:
        icon, ascii_icon, style = STATES.get(state, ("?", "?", ""))
        text = (icon if self.emoji else ascii_icon) + (f" {state}" if label else "")
        return Text(text, style=self.style(style))

    def bar(self, done: int, total: int, width: int = 30) -> Text:
        filled = round(width * done / total) if total else width
        full, empty = ("█", "░") if self.emoji else ("#", "-")
        text = Text()
        text.append(full * filled, style=self.style("green"))
        text.append(empty * (width - filled), style=self.style("dim"))
        return text


def make_console(color: str = "auto", file: TextIO | None = None) -> Console:
    """A console for ``color`` = auto | always | never (rich honours NO_COLOR itself)."""
    if color == "always":
        return Console(file=file, force_terminal=True)
    if color == "never":
        return Console(file=file, no_color=True)
    return Console(file=file)

