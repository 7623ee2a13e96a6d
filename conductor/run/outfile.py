"""The `$CONDUCTOR_OUTPUT` file: named values a task hands to the tasks after it.

The format is GitHub Actions' `$GITHUB_OUTPUT`, as its runner reads it
(actions/runner, FileCommandManager): one ``key=value`` per line, the value being
everything after the first ``=``; or a heredoc for a multi-line value::

    summary<<EOF
    first line
    second line
    EOF

A line whose first ``=`` comes before any ``<<`` is a ``key=value`` line (so ``a=b<<c``
sets ``a`` to ``b<<c``). The heredoc's value is the lines up to the first line that is
exactly the delimiter, without the newline before it. Empty lines between entries are
ignored; a key written twice keeps its last value. Lines may end in ``\\n`` or ``\\r\\n``
(the runner accepts CRLF on Windows only; an agent may well write it anywhere).

Stricter than the runner where it costs a user nothing and saves a confusing failure
later: a key must be a name a ``{{ tasks.<id>.outputs.<key> }}`` placeholder can name,
the file must be UTF-8, and it must not exceed ``MAX_BYTES``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MAX_BYTES = 1024 * 1024
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # as spec/template.py reads `outputs.<key>`


class OutputFileError(ValueError):
    """A malformed output file; the message names the line."""


def read_output_file(path: Path) -> dict[str, str]:
    """The values in the file at ``path``; {} when it is missing or empty.

    The file sits in the agent's worktree, so the agent may have replaced it by a symlink
    to a file it cannot read itself (a sandbox's denied path): it is opened without
    following one, and only so much of it is read as could be valid."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return {}
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise OutputFileError(f"$CONDUCTOR_OUTPUT is over {MAX_BYTES:,} bytes (1 MiB)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise OutputFileError(f"$CONDUCTOR_OUTPUT line {line}: not valid UTF-8") from None
    return parse_outputs(text)


def parse_outputs(text: str) -> dict[str, str]:
    """``key=value`` lines and ``key<<DELIMITER`` heredocs → {key: value}."""
    lines = _lines(text)
    out: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line, i = lines[i], i + 1
        at = i  # 1-based number of this line
        if not line:
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if eq >= 0 and (heredoc < 0 or eq < heredoc):
            key, value = line[:eq], line[eq + 1 :]
        elif heredoc >= 0:
            key, delimiter = line[:heredoc], line[heredoc + 2 :]
            if not delimiter:
                raise _error(at, f"`{_short(line)}` has no delimiter after `<<`")
            value, i = _heredoc(lines, i, key, delimiter)
        else:
            hint = "write `key=value`, or `key<<EOF`, the lines, then `EOF`"
            raise _error(
                at, f"`{_short(line)}` is neither `key=value` nor `key<<DELIMITER`; {hint}"
            )
        _check_key(key, at)
        out[key] = value
    return out


def _lines(text: str) -> list[str]:
    """The file's lines without their ends (`\\n` or `\\r\\n`); no final empty line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _heredoc(lines: list[str], start: int, key: str, delimiter: str) -> tuple[str, int]:
    """The value from line index ``start`` up to the delimiter, and the index after it."""
    for end in range(start, len(lines)):
        if lines[end] == delimiter:
            return "\n".join(lines[start:end]), end + 1
    raise _error(
        start,
        f"`{_short(key)}<<{_short(delimiter)}`: no line `{_short(delimiter)}` ends the value",
    )


def _check_key(key: str, line: int) -> None:
    if not key:
        raise _error(line, "a value without a key (the line starts with `=` or `<<`)")
    if not KEY.fullmatch(key):
        raise _error(
            line,
            f"`{_short(key)}` is not a usable key: letters, digits, `_` and `-`, "
            "starting with a letter or `_`",
        )


def _error(line: int, message: str) -> OutputFileError:
    return OutputFileError(f"$CONDUCTOR_OUTPUT line {line}: {message}")


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
