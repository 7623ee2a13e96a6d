"""Where a character of a YAML string value sits in the file: line and column of an offset.

The loader records where each scalar starts; a problem inside one (a `{{ }}` placeholder,
a `when:` condition) points at the character itself. The value's lines are found in the
file's text: a plain or quoted scalar starts on its own line, a block scalar (``|``,
``>``) on the line after its indicator. A line whose text the file does not hold as such
(escapes in a quoted string, folding) falls back to the scalar's start.
"""

from __future__ import annotations

Position = tuple[int, int]


def offset_position(text: str, start: Position, value: str, offset: int) -> Position:
    """The 1-based (line, column) in ``text`` (the file) of ``value[offset]``, where the
    scalar holding ``value`` starts at ``start``."""
    lines = text.split("\n")
    line0, col0 = start[0] - 1, start[1] - 1
    if not 0 <= line0 < len(lines):
        return start
    offset = max(0, min(offset, len(value)))
    k = value.count("\n", 0, offset)  # which line of the value
    line_start = value.rfind("\n", 0, offset) + 1
    wanted = value[line_start:].split("\n", 1)[0]
    indicator = lines[line0][col0 : col0 + 1]
    if indicator in ("|", ">"):
        at, search_from = line0 + 1 + k, 0
    else:
        at = line0 + k
        search_from = col0 if k == 0 else 0
    if at >= len(lines):
        return start
    found = lines[at].find(wanted, search_from)
    if found < 0:
        return start
    return at + 1, found + (offset - line_start) + 1


def position_in_text(text: str, offset: int) -> Position:
    """The 1-based (line, column) of ``text[offset]`` (a prompt file)."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1
