"""The runner's own debug log: `.conductor/conductor.log`, rotated, for bug reports.

Not the execution log (that is report.py's document for people); this one records what
conductor itself did, prefixed with the facts a bug report needs.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import platform
import stat
import sys
from collections.abc import Callable, Sequence
from io import TextIOWrapper
from pathlib import Path

from conductor import __version__
from conductor.state.records import EventRow

LOGGER = "conductor"
FILE_NAME = "conductor.log"
MAX_BYTES = 1_000_000
BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s"


def environment_facts(git_version: str | None, argv: Sequence[str]) -> list[str]:
    """conductor, python, platform, git, cwd and argv, one fact per line."""
    return [
        f"conductor {__version__}",
        f"python {platform.python_version()} ({sys.executable})",
        f"platform {platform.platform()}",
        f"git {(git_version or 'unknown').strip().removeprefix('git version ')}",
        f"cwd {os.getcwd()}",
        "argv " + " ".join(argv),
    ]


class _QuietHandler(logging.handlers.RotatingFileHandler):
    """A debug log that cannot be written (a full disk, a read-only `.conductor`) is
    lost quietly: logging's default prints a traceback on the user's terminal, and the
    fault itself is reported once, by the store."""

    _size = 0  # what the file holds, counted here (-1: not a regular file, never rotated)

    def handleError(self, record: logging.LogRecord) -> None:
        pass

    # The stock size check stats the path twice, seeks, and formats every record a second
    # time, for each line: a run writes a line per event, from every worker thread. Here
    # the size is read once per opening and counted as lines are formatted (characters,
    # close enough to bytes for rotation), so the check is one comparison.
    def _open(self) -> TextIOWrapper:
        stream = super()._open()
        st = os.fstat(stream.fileno())
        self._size = st.st_size if stat.S_ISREG(st.st_mode) else -1
        return stream

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self._size >= 0:
            self._size += len(text) + 1
        return text

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self.stream is None:  # opened lazily
            self.stream = self._open()
        return 0 < self.maxBytes <= self._size

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            super().flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # closing flushes what the disk did not take
            super().close()


_FORMAT = logging.Formatter(FORMAT)


class _Masking(logging.Filter):
    """Masks the run's secrets in every record the debug log writes: its message with the
    arguments filled in, its traceback and its stack. A handler's filter sees the records
    of child loggers too (`conductor.run.hooks`), which a logger's filter would not."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redact
        try:
            message = record.getMessage()
        except Exception:  # bad arguments: the formatter fails too, and nothing is written
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMAT.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def setup_runner_log(
    state_dir: Path,
    git_version: str | Callable[[], str] | None = None,
    argv: Sequence[str] | None = None,
    redact: Callable[[str], str] = str,
) -> logging.Logger:
    """Attach a rotating file handler to the ``conductor`` logger (once per file) and write
    the environment facts. ``git_version`` is the `git --version` output, or a function
    returning it: this module never starts git itself. ``redact`` (the run's
    `Secrets.redact`) masks every record before it reaches the file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = (state_dir / FILE_NAME).resolve()
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # debug chatter must not reach the user's terminal
    handler = next((h for h in logger.handlers if _writes_to(h, path)), None)
    if handler is None:
        handler = _QuietHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
        handler.setFormatter(_FORMAT)
        logger.addHandler(handler)
    masking = next((f for f in handler.filters if isinstance(f, _Masking)), None)
    if masking is None:
        handler.addFilter(_Masking(redact))
    else:  # the same file for a later run of this process: that run's secrets
        masking.redact = redact
    version = _call(git_version) if callable(git_version) else git_version
    for fact in environment_facts(version, sys.argv if argv is None else argv):
        logger.info(fact)
    return logger


def _call(fn: Callable[[], str]) -> str | None:
    try:
        return fn()
    except Exception as exc:  # no git on PATH is a fact to record, not a reason to stop
        return f"unknown ({exc})"


def event_logger(logger: logging.Logger) -> Callable[[EventRow], None]:
    """A sink writing every event to the debug log, so one file tells the whole story."""

    def sink(row: EventRow) -> None:
        logger.debug(
            "event %s %s %s %s", row["kind"], row["task_id"] or "-", row["level"], row["data"]
        )

    return sink


def _writes_to(handler: logging.Handler, path: Path) -> bool:
    return isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path


def close_runner_log(state_dir: Path) -> None:
    """Detach and close the handler for ``state_dir`` (tests, and long-lived processes)."""
    path = (state_dir / FILE_NAME).resolve()
    logger = logging.getLogger(LOGGER)
    for handler in [h for h in logger.handlers if _writes_to(h, path)]:
        logger.removeHandler(handler)
        handler.close()
