"""The exception tree.

Three families, so callers can catch by what they must do about it:

* ``UserError`` (exit 2): the input is wrong (workflow file, flags, repository state).
  Nothing was started; the message says what to fix.
* ``InfraError``: something outside the user's input failed (git, disk, a process).
  The engine may retry; the CLI reports it without a traceback.
* ``Rejected``: an agent's work did not pass (validator, merge conflict, timeout).
  It fails an attempt, never the runner.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Diagnostic:
    """One problem, located in a file where possible (line and col are 1-based)."""

    message: str
    path: str | None = None
    line: int | None = None
    col: int | None = None
    hint: str | None = None

    def render(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f":{self.line}:{self.col or 1}"
            where += ": "
        text = where + self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConductorError(Exception):
    """Base of every error conductor raises on purpose."""

    exit_code = EXIT_FAILED

    def render(self) -> str:
        return f"error: {self}"


class UserError(ConductorError):
    """Bad input: reported with exit code 2, nothing started, nothing changed."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def render(self) -> str:
        text = f"error: {self}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class SpecError(UserError):
    """One or more problems in a workflow file, all reported together."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(d.render() for d in diagnostics))

    def render(self) -> str:
        n = len(self.diagnostics)
        tail = f"\n{n} problem{'s' if n != 1 else ''} found" if n > 1 else ""
        return str(self) + tail


class InfraError(ConductorError):
    """git, the filesystem or a process failed; may be retried."""


class StoreError(InfraError):
    """The state store (`.conductor/state.db`) cannot be read or written: corrupt, full,
    read-only or locked. Raised instead of `sqlite3.Error`, so every command reports it
    as one message; exit 2 before a run starts (the runner sets 1 once one has)."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str, path: str, kind: str = "other") -> None:
        super().__init__(message)
        self.hint = hint
        self.path = path
        self.kind = kind  # corrupt | full | readonly | locked | other

    def render(self) -> str:
        return f"error: {self}\n  hint: {self.hint}"


class GitError(InfraError):
    def __init__(self, argv: list[str], returncode: int, output: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.output = output
        cmd = " ".join(argv)
        super().__init__(f"`{cmd}` exited {returncode}: {output.strip()}")


class Rejected(ConductorError):
    """An attempt's work was not accepted (validator, conflict, timeout, agent error)."""

    def __init__(self, reason: str, output: str = "", retriable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = output
        self.retriable = retriable


class MergeConflict(Rejected):
    def __init__(self, paths: list[str], output: str = "") -> None:
        self.paths = paths
        super().__init__("merge conflict in " + ", ".join(paths), output)
