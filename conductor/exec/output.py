"""What a command prints: split into lines, masked, appended to its log, handed on.

Shared by every executor that runs a real command, so the log of an attempt reads the
same whether its agent ran as a subprocess or in a tmux pane.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from conductor.exec.base import ProcessResult
from conductor.spec.durations import format_duration

_MAX_LINE = 65536  # a longer unterminated line is logged in pieces, so memory stays bounded


def _utf8_cut(buf: bytes, limit: int) -> int:
    """A cut point <= limit that does not split a UTF-8 character."""
    for cut in range(limit, max(limit - 4, 0), -1):
        if (buf[cut] & 0xC0) != 0x80:  # not a continuation byte: a character starts here
            return cut
    return limit


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\r") else text


class Lines:
    """Splits a byte stream into decoded lines; keeps the unterminated tail for later."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> list[str]:
        parts = (self._tail + data).split(b"\n")
        tail = parts.pop()
        lines = [_decode(p) for p in parts]
        while len(tail) > _MAX_LINE:
            cut = _utf8_cut(tail, _MAX_LINE)
            lines.append(_decode(tail[:cut]))
            tail = tail[cut:]
        self._tail = tail
        return lines

    def flush(self) -> list[str]:
        """The last line when the output did not end with a newline."""
        tail, self._tail = self._tail, b""
        return [_decode(tail)] if tail else []


class Sink:
    """Where lines go: redacted, then appended to the log and handed to ``on_line``."""

    def __init__(
        self,
        log_path: Path | None,
        on_line: Callable[[str], None] | None,
        redact: Callable[[str], str] | None,
    ) -> None:
        self._on_line, self._redact = on_line, redact
        self._fh: IO[str] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(log_path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115

    def emit(self, lines: list[str]) -> None:
        for line in lines:
            text = self._redact(line) if self._redact is not None else line
            if self._fh is not None:
                self._fh.write(text + "\n")
            if self._on_line is not None:
                self._on_line(text)
        if self._fh is not None and lines:
            self._fh.flush()  # flushed per chunk so `conductor logs -f` sees lines promptly

    def note(self, text: str) -> None:
        """A conductor line (header/footer): redacted, logged, not passed to on_line."""
        if self._fh is not None:
            self._fh.write((self._redact(text) if self._redact else text) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def header(argv: Sequence[str], cwd: Path) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f"# conductor: started {stamp} in {cwd}: {shlex.join(argv)}"


def footer(res: ProcessResult) -> str:
    text = f"# conductor: {res.reason}, exit code {res.exit_code}, after {res.duration_s:.3f}s"
    return text + (f": {res.error}" if res.error else "")


def human(seconds: float) -> str:
    """``7200`` → ``2h``; sub-10-second limits (tests, tight validators) keep their fraction."""
    return format_duration(seconds) if seconds >= 10 else f"{seconds:.3g}s"


