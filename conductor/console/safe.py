"""Neutralising agent-provided text before it reaches a terminal.

An agent's output, progress messages and errors are untrusted: an escape sequence in them
could retitle the window (OSC 0), write the clipboard (OSC 52), clear the screen or, with
a bare CR, overwrite what a line said. Every display point shows such text through
`safe`, which writes control characters out escaped (ESC as `\\x1b`), so they are visible
and inert. JSON outputs stay raw (JSON escapes them itself), and so does `logs` to a pipe.
No imports beyond `re`: `status` and `--help` stay fast.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), and the
# bidirectional overrides and isolates that reorder what a line appears to say.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    if code == 0x09:  # a tab in a one-line cell: a space keeps the columns
        return " "
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: str, *, newlines: bool = True) -> str:
    """``text`` with every control character shown escaped; tab and newline are kept,
    unless ``newlines`` is False (a table cell or one-line view: newline escaped too)."""
    pattern = _UNSAFE if newlines else _UNSAFE_LINE
    return pattern.sub(_escape, text) if pattern.search(text) else text
