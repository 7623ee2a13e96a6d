"""What a command prints: split into lines, masked, appended to its log, handed on.

Shared by every executor that runs a real command, so the log of an attempt reads the
same whether its agent ran as a subprocess or in a tmux pane.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO

from conductor.exec.base import ProcessResult
from conductor.spec.durations import format_duration
from conductor.spec.secrets import Secrets

_MAX_LINE = 65536  # a longer unterminated line is logged in pieces, so memory stays bounded
# How much of a cut line is held back when the redact function does not say how long its
# longest secret is (`Secrets.longest`): enough for any key or token seen in practice.
_HOLD_DEFAULT = 8192
log = logging.getLogger("conductor")


def _utf8_cut(buf: bytes, limit: int) -> int:
    """A cut point <= limit that does not split a UTF-8 character."""
    for cut in range(limit, max(limit - 4, 0), -1):
        if (buf[cut] & 0xC0) != 0x80:  # not a continuation byte: a character starts here
            return cut
    return limit


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\r") else text


class Piece(str):
    """A piece of a line longer than `_MAX_LINE`: the line goes on in the next one."""


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
            lines.append(Piece(tail[:cut].decode("utf-8", "replace")))
            tail = tail[cut:]
        self._tail = tail
        return lines

    def flush(self) -> list[str]:
        """The last line when the output did not end with a newline."""
        tail, self._tail = self._tail, b""
        return [_decode(tail)] if tail else []


class Sink:
    """Where lines go: redacted, then appended to the log and handed to ``on_line``.

    Pieces of a cut line (`Piece`) are joined back before masking: a secret straddling
    the cut would otherwise reach the log as two unmasked halves. The joined text is
    masked as a whole and written out except for a held-back tail as long as the longest
    secret, which waits for the next piece (so memory stays bounded by one piece + hold).

    A log that cannot be written (a full disk) is given up on, not raised: the lines still
    reach ``on_line``, the caller keeps draining the command's pipe so the command is not
    blocked, and the store's own fault on that disk ends the run (resumable). The loss is
    noted once in conductor.log and, if space came back, at the end of the log itself.
    """

    def __init__(
        self,
        log_path: Path | None,
        on_line: Callable[[str], None] | None,
        redact: Callable[[str], str] | None,
    ) -> None:
        self._on_line, self._redact = on_line, redact
        self._carry = ""  # the unwritten end of a cut line
        owner = getattr(redact, "__self__", None)  # `Secrets.redact` knows its values
        self._secrets = owner if isinstance(owner, Secrets) else None
        self._hold = self._secrets.longest if self._secrets is not None else _HOLD_DEFAULT
        self._fh: IO[str] | None = None
        self._path = log_path
        self.fault: OSError | None = None  # why the log stopped being written
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(log_path, "a", encoding="utf-8", errors="replace")  # noqa: SIM115

    def emit(self, lines: list[str]) -> None:
        for line in lines:
            if isinstance(line, Piece):
                self._piece(line)
            else:
                self._out(self._mask(self._carry + line))
                self._carry = ""
        if lines:
            self._flush()  # per chunk, so `conductor logs -f` sees lines promptly

    def _piece(self, piece: str) -> None:
        buf = self._carry + piece
        if self._redact is None:
            self._out(buf)
            self._carry = ""
            return
        cut = max(len(buf) - self._hold, 0)
        # a secret starting before the cut lies wholly inside buf: move the cut past it
        if self._secrets is not None:
            for start, end in self._secrets.spans(buf):
                if start < cut < end:
                    cut = end
        if cut == 0:
            self._carry = buf
            return
        self._out(self._redact(buf[:cut]))
        self._carry = buf[cut:]

    def _mask(self, text: str) -> str:
        return self._redact(text) if self._redact is not None else text

    def _out(self, text: str) -> None:
        self._write(text)
        if self._on_line is not None:
            self._on_line(text)

    def _write(self, text: str) -> None:
        if self._fh is not None:
            try:
                self._fh.write(text + "\n")
            except OSError as exc:
                self._give_up(exc)

    def _flush(self) -> None:
        if self._fh is not None:
            try:
                self._fh.flush()
            except OSError as exc:
                self._give_up(exc)

    def _give_up(self, exc: OSError) -> None:
        fh, self._fh, self.fault = self._fh, None, exc
        if fh is not None:
            with contextlib.suppress(OSError):  # closing flushes what the disk refused
                fh.close()
        log.warning("%s", self._lost())

    def _lost(self) -> str:
        why = self.fault.strerror if self.fault and self.fault.strerror else str(self.fault)
        return f"# conductor: cannot write {self._path} ({why}): output after this is not logged"

    def _drain(self) -> None:
        if self._carry:
            carry, self._carry = self._carry, ""
            self._out(self._mask(carry))

    def note(self, text: str) -> None:
        """A conductor line (header/footer): redacted, logged, not passed to on_line."""
        self._drain()  # the end of a cut line comes before conductor's own line
        self._write(self._mask(text))
        self._flush()

    def told(self, result: ProcessResult) -> ProcessResult:
        """``result``, carrying why the log stopped being written if it did."""
        return result if self.fault is None else replace(result, log_fault=self.fault)

    def close(self) -> None:
        self._drain()
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError as exc:
                self._give_up(exc)
        if self.fault is not None and self._path is not None:
            with contextlib.suppress(OSError), open(self._path, "a", encoding="utf-8") as fh:
                fh.write(self._lost() + "\n")  # the gap explained, if there is room now


def header(argv: Sequence[str], cwd: Path) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f"# conductor: started {stamp} in {cwd}: {shlex.join(argv)}"


def footer(res: ProcessResult) -> str:
    text = f"# conductor: {res.reason}, exit code {res.exit_code}, after {res.duration_s:.3f}s"
    return text + (f": {res.error}" if res.error else "")


def human(seconds: float) -> str:
    """``7200`` → ``2h``; sub-10-second limits (tests, tight validators) keep their fraction."""
    return format_duration(seconds) if seconds >= 10 else f"{seconds:.3g}s"
