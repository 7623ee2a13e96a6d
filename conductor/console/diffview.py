"""A unified diff for a terminal: agent-written text made inert, then coloured as git does.

The diff holds whatever the agent wrote into files, so on a terminal its control
characters are shown escaped (``safe``) before conductor adds colour of its own; piped,
`conductor diff` writes the patch untouched (it applies with `git apply`).
"""

from __future__ import annotations

from conductor.console.safe import safe

RESET = "\x1b[m"
# line prefix -> SGR colour, as git's defaults: meta bold, hunk header cyan, -/+ red/green
_META = ("diff --git ", "index ", "--- ", "+++ ", "new file", "deleted file", "similarity ",
         "rename ", "old mode", "new mode", "Binary files")  # fmt: skip


def _style(line: str, in_header: bool) -> str | None:
    if in_header and line.startswith(_META):
        return "\x1b[1m"
    if line.startswith("@@"):
        return "\x1b[36m"
    if line.startswith("+"):
        return "\x1b[32m"
    if line.startswith("-"):
        return "\x1b[31m"
    return None


def render(text: str, colour: bool) -> str:
    """``text`` escaped for a terminal, each line coloured when ``colour``."""
    out: list[str] = []
    in_header = False
    # bytes that are not UTF-8 (git hands them over surrogate-escaped) shown as U+FFFD
    shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    for line in safe(shown).split("\n"):
        if line.startswith("diff --git "):
            in_header = True
        elif line.startswith("@@"):
            in_header = False
        style = _style(line, in_header) if colour else None
        out.append(f"{style}{line}{RESET}" if style and line else line)
    return "\n".join(out)
