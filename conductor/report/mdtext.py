"""Markdown text primitives for the execution log: table cells, fences no content can
close, terminal output made plain, and cheap tails of big log files.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*(?:\x07|\x1b\\)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts else "–"


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts))


def short(sha: str | None) -> str:
    return f"`{sha[:10]}`" if sha else "–"


def cell(text: Any, limit: int = 0) -> str:
    """One table cell: one line, no column breaks, no raw HTML."""
    out = " ".join(str(text).split())
    if limit and len(out) > limit:
        out = out[: limit - 1] + "…"
    return out.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def fence(text: str, info: str = "text") -> str:
    """A fenced block that ``text`` cannot close, whatever backticks it holds."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{text.rstrip()}\n{ticks}"


def clean(text: str) -> str:
    """Terminal output as plain text: colour codes and control characters dropped."""
    return _CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n")))


def tail_lines(text: str, n: int, more_before: bool = False) -> str:
    """The last ``n`` lines, after a marker when some were left out."""
    lines = text.rstrip().splitlines()
    kept = "\n".join(lines[-n:])
    if more_before:  # only a tail of the file was read: the count is unknown
        return f"… (earlier lines not shown)\n{kept}"
    cut = len(lines) - n
    return f"… ({cut} earlier lines)\n{kept}" if cut > 0 else kept


def tail_file(path: str | None, lines: int = 30) -> str | None:
    """The last ``lines`` lines of a (possibly huge) log; None when it is unreadable."""
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * lines))  # ~256 bytes a line is plenty
            data = fh.read()
    except OSError:
        return None
    text = clean(data.decode("utf-8", errors="replace"))
    partial = size > len(data)
    if partial:  # the first line read is probably cut in the middle
        text = text.split("\n", 1)[-1]
    return tail_lines(text, lines, partial)


def para(out: list[str], *lines: str) -> None:
    """Append a block after exactly one blank line (markdown needs one, GitHub shows two)."""
    if out and out[-1] != "":
        out.append("")
    out.extend(lines)
