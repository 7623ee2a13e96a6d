"""Tables that fit the terminal: a header row, cells cut with an ellipsis, columns that
matter least left out when even cut they do not fit.

`plan`, `list`, `status` and `runs` lay out with ``fit``; ``plain`` and ``ansi`` turn
the result into text for a pipe or a colour terminal, and console/tables.py into rich
text. No rich here: `status` and `runs` start fast and print the same table to a pipe.

How a table is made to fit ``width``: each column starts at its widest cell; columns that
may ``shrink`` (titles, details) give up room down to ``least``, widest first; if that is
not enough, columns with a ``drop`` rank are left out, highest rank first. Nothing is
padded after the last column.
"""

from __future__ import annotations

import os
import shutil
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

GAP = 2  # spaces between columns
Cell = str | tuple[str, str]  # text, or (text, style) with a style such as "bold red"
Segment = tuple[str, str]  # text and its style ("" for none)
Line = list[Segment]


@dataclass(frozen=True)
class Col:
    header: str
    align: str = "<"  # "<" left, ">" right
    shrink: bool = False  # may be cut with an ellipsis, down to ``least``
    least: int = 8
    drop: int = 0  # >0: left out when nothing else fits, the highest first


def width_of(text: str) -> int:
    """Terminal columns ``text`` takes: wide (CJK, most emoji) characters take two."""
    if text.isascii():
        return len(text)
    n = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        n += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return n


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` columns, ending in … when it was cut."""
    if width_of(text) <= width:
        return text
    out, used = "", 0
    for ch in text:
        w = width_of(ch)
        if used + w > width - 1:
            break
        out, used = out + ch, used + w
    return out + "…" if width > 0 else ""


def _text(c: Cell) -> str:
    return c if isinstance(c, str) else c[0]


def _style(c: Cell) -> str:
    return "" if isinstance(c, str) else c[1]


def widths(cols: Sequence[Col], rows: Sequence[Sequence[Cell]], width: int) -> list[int | None]:
    """Each column's width, None for a column left out (see the module's docstring)."""
    natural = [max([width_of(c.header)] + [width_of(_text(r[i])) for r in rows if i < len(r)])
               for i, c in enumerate(cols)]  # fmt: skip
    shown: list[int | None] = list(natural)
    for rank in [*sorted({c.drop for c in cols if c.drop}, reverse=True), 0]:
        _shrink(cols, shown, natural, width)
        if _total(shown) <= width or not rank:
            break
        shown = [None if c.drop >= rank else natural[i] for i, c in enumerate(cols)]
    return shown


def _total(shown: Sequence[int | None]) -> int:
    kept = [w for w in shown if w is not None]
    return sum(kept) + GAP * max(0, len(kept) - 1)


def _shrink(cols: Sequence[Col], shown: list[int | None], natural: list[int], width: int) -> None:
    """Take the excess from the shrinkable columns, always from the widest of them."""
    excess = _total(shown) - width
    while excess > 0:
        room = [(w - max(cols[i].least, 1), i) for i, w in enumerate(shown)
                if w is not None and cols[i].shrink and w > max(cols[i].least, 1)]  # fmt: skip
        if not room:
            return
        _, i = max((shown[i] or 0, i) for _, i in room)
        shown[i] = (shown[i] or 0) - 1
        excess -= 1


def fit(
    cols: Sequence[Col], rows: Sequence[Sequence[Cell]], width: int, head_style: str = "bold"
) -> list[Line]:
    """The header and ``rows`` laid out in ``width`` columns, as styled segments; a
    column with nothing in any row is left out."""
    empty = [i for i in range(len(cols)) if all(not _text(r[i]) for r in rows if i < len(r))]
    if empty and len(empty) < len(cols):
        keep = [i for i in range(len(cols)) if i not in empty]
        cols = [cols[i] for i in keep]
        rows = [[r[i] if i < len(r) else "" for i in keep] for r in rows]
    shown = widths(cols, rows, width)
    header: list[Cell] = [(c.header, head_style) for c in cols]
    return [_line(cols, shown, r) for r in [header, *rows]]


def _line(cols: Sequence[Col], shown: Sequence[int | None], row: Sequence[Cell]) -> Line:
    kept = [i for i, w in enumerate(shown) if w is not None]
    out: Line = []
    for n, i in enumerate(kept):
        w = shown[i] or 0
        cell = row[i] if i < len(row) else ""
        text = cut(_text(cell), w)
        pad = " " * (w - width_of(text))
        last = n == len(kept) - 1
        if cols[i].align == ">":
            out += [(pad, ""), (text, _style(cell))]
        else:
            out += [(text, _style(cell)), ("" if last else pad, "")]
        if not last:
            out.append((" " * GAP, ""))
    return out


# ------------------------------------------------------------------ output


_SGR = {"bold": "1", "dim": "2", "italic": "3", "underline": "4", "red": "31",
        "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36"}  # fmt: skip


def plain(lines: Sequence[Line]) -> str:
    return "\n".join("".join(t for t, _ in ln).rstrip() for ln in lines)


def ansi(lines: Sequence[Line]) -> str:
    """``lines`` with their styles as ANSI SGR codes."""
    out = []
    for ln in lines:
        parts = []
        for text, style in ln:
            codes = ";".join(_SGR[s] for s in style.split() if s in _SGR)
            parts.append(f"\x1b[{codes}m{text}\x1b[0m" if codes and text else text)
        out.append("".join(parts).rstrip())
    return "\n".join(out)


def terminal_width() -> int:
    """$COLUMNS, else the terminal's width, else 80 (a pipe)."""
    try:
        cols = int(os.environ.get("COLUMNS", ""))
        if cols > 0:
            return cols
    except ValueError:
        pass
    if sys.stdout.isatty():
        return shutil.get_terminal_size((80, 24)).columns
    return 80


def colour_wanted() -> bool:
    """Colour on a terminal, unless NO_COLOR is set or TERM is dumb."""
    return (sys.stdout.isatty() and not os.environ.get("NO_COLOR")
            and os.environ.get("TERM") != "dumb")  # fmt: skip


def show(lines: Sequence[Line]) -> str:
    """``lines`` as the terminal (or pipe) at hand wants them."""
    return ansi(lines) if colour_wanted() else plain(lines)
