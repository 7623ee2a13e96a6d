"""The thin git runner: the only place conductor starts a git process, plus the few git
wire formats conductor reads and writes (commit messages, ``-z`` listings).

Plain ``subprocess`` rather than GitPython: a short git call costs one fork/exec either way,
and GitPython adds import time and long-lived ``cat-file`` helper processes on top.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conductor.errors import GitError, UserError

# Re-exported while callers outside the git room move to conductor.git.env (importing
# this module is how tests/test_house.py spots a second git runner).
from conductor.git.env import LEAKED_GIT_VARS as LEAKED_GIT_VARS
from conductor.git.env import clean_env

# No user hook runs for conductor's git calls: hooks are for humans, and a slow or failing
# one (update-ref runs reference-transaction hooks, commit runs pre-commit) must not decide
# whether an agent's work is kept.
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")

# Who conductor's own commits are by when neither git config nor the environment says.
FALLBACK_NAME = "conductor"
FALLBACK_EMAIL = "conductor@localhost"


class GitMissing(GitError, UserError):
    """No ``git`` to run. A ``UserError`` (exit 2, a hint, no traceback): the machine
    lacks what conductor needs, as with an agent CLI missing from PATH; still a
    ``GitError``, so code that catches git failures keeps catching it."""

    def __init__(self, argv: list[str], output: str) -> None:
        GitError.__init__(self, argv, 127, output)
        self.hint = "install git (2.38 or newer) and make sure `git` is on PATH"

    def __str__(self) -> str:
        return "git is not installed or not on PATH"


@dataclass(frozen=True)
class GitResult:
    """A finished git process; ``stdout`` keeps everything but one trailing newline."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error(self) -> GitError:
        output = "\n".join(part for part in (self.stderr.strip(), self.stdout.strip()) if part)
        return GitError(self.argv, self.returncode, output)


# (os.environ's bytes when last cleaned, the cleaned copy): one tuple, swapped whole
_env_cache: tuple[dict[bytes, bytes], dict[str, str]] | None = None


def _process_env() -> dict[str, str]:
    """``clean_env(os.environ)``, worked out again only when the environment changed: a
    run makes thousands of git calls, and decoding and filtering every variable for each
    was a measurable share of the runner's CPU per task. (A C-level compare of the bytes
    mapping, where CPython has one; a race merely cleans twice.)"""
    global _env_cache
    data = getattr(os.environ, "_data", None)
    if not isinstance(data, dict):
        return clean_env(os.environ)
    if _env_cache is None or _env_cache[0] != data:
        _env_cache = (dict(data), clean_env(os.environ))
    return dict(_env_cache[1])


def run(
    args: Sequence[str],
    cwd: Path,
    *,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    c_locale: bool = False,
) -> GitResult:
    """Run ``git *args`` in ``cwd`` and return the result whatever the exit status.

    ``env`` is laid over the cleaned process environment (so a caller may set
    ``GIT_INDEX_FILE`` on purpose). ``c_locale`` forces ``LC_ALL=C`` for output that is
    parsed, keeping the user's locale out of it without changing their other messages.
    """
    argv = ["git", *args]
    full_env = _process_env()
    if env:
        full_env.update(env)
    if c_locale:
        full_env["LC_ALL"] = "C"
    # surrogateescape: paths are bytes to git; non-UTF-8 names must survive a round trip.
    kwargs: dict[str, Any] = {"encoding": "utf-8", "errors": "surrogateescape"}
    if input is None:
        kwargs["stdin"] = subprocess.DEVNULL  # never let git read the terminal
    else:
        kwargs["input"] = input
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=full_env, capture_output=True, check=False, **kwargs
        )
    except OSError as exc:  # git missing, or cwd gone
        # The child names the executable when exec failed and the directory when chdir did.
        if exc.filename == argv[0]:
            raise GitMissing(argv, str(exc)) from exc
        raise GitError(argv, 127, str(exc)) from exc
    return GitResult(argv, proc.returncode, proc.stdout.removesuffix("\n"), proc.stderr)


def git(
    args: Sequence[str],
    cwd: Path,
    *,
    input: str | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    c_locale: bool = False,
) -> str:
    """Run git and return its stdout; a non-zero exit raises ``GitError`` when ``check``."""
    result = run(args, cwd, input=input, env=env, c_locale=c_locale)
    if check and not result.ok:
        raise result.error()
    return result.stdout


def git_ok(
    args: Sequence[str],
    cwd: Path,
    *,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
) -> bool:
    """True when git exits 0 (for questions such as ``merge-base --is-ancestor``)."""
    return run(args, cwd, input=input, env=env).ok


def identity_args(cwd: Path) -> tuple[str, ...]:
    """``-c user.*`` fallbacks for what neither git config nor the environment provide.

    Reads ``os.environ``: that is what the git process inherits (see ``run``), so the
    answer matches what git itself would find. One ``git config`` process.
    """
    res = run(["config", "--get-regexp", r"^user\.(name|email)$"], cwd, c_locale=True)
    keys = {line.split(" ", 1)[0] for line in res.stdout.splitlines()} if res.ok else set()
    env = os.environ
    args: list[str] = []
    if "user.name" not in keys and not (
        env.get("GIT_AUTHOR_NAME") and env.get("GIT_COMMITTER_NAME")
    ):
        args += ["-c", f"user.name={FALLBACK_NAME}"]
    if "user.email" not in keys and not (
        env.get("EMAIL") or (env.get("GIT_AUTHOR_EMAIL") and env.get("GIT_COMMITTER_EMAIL"))
    ):
        args += ["-c", f"user.email={FALLBACK_EMAIL}"]
    return tuple(args)


def format_message(subject: str, body: str, trailers: Mapping[str, str]) -> str:
    """``subject\\n\\nbody\\n\\nKey: value...``: the trailers form the last paragraph."""
    parts = [" ".join(subject.split()) or "conductor"]
    if body.strip():
        parts.append(body.strip("\n"))
    lines = []
    for key, value in trailers.items():
        if not key or any(c.isspace() or c == ":" for c in key):
            raise ValueError(f"invalid trailer key {key!r}")
        lines.append(f"{key}: {' '.join(str(value).split())}")  # a trailer is one line
    if lines:
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


_ERE_SPECIAL = frozenset(".[]()*+?{}|^$\\")


def ere_escape(text: str) -> str:
    """``text`` as a literal in a POSIX extended regex (``git log -E --grep``)."""
    return "".join("\\" + c if c in _ERE_SPECIAL else c for c in text)


def parse_conflict(out: str) -> tuple[list[str], str]:
    """Paths and messages from ``merge-tree --write-tree -z --name-only`` (exit status 1).

    Layout: ``tree NUL (path NUL)* NUL`` then messages, each
    ``count NUL (path NUL)*count type NUL text NUL``.
    """
    fields = out.split("\0")
    paths: list[str] = []
    i = 1
    while i < len(fields) and fields[i]:
        if fields[i] not in paths:  # one entry per stage
            paths.append(fields[i])
        i += 1
    messages: list[str] = []
    i += 1
    while i < len(fields) and fields[i].isdigit():
        i += int(fields[i]) + 1  # skip the count and the paths it announces
        if i + 1 < len(fields):
            messages.append(fields[i + 1].strip())
        i += 2
    return paths, "\n".join(m for m in messages if m)


def parse_worktrees(out: str) -> list[tuple[Path, str | None, bool]]:
    """(path, branch short name or None, bare) from ``git worktree list --porcelain -z``."""
    result: list[tuple[Path, str | None, bool]] = []
    path: Path | None = None
    branch: str | None = None
    bare = False
    for field in [*out.split("\0"), ""]:
        if field.startswith("worktree "):
            path, branch, bare = Path(field[len("worktree ") :]), None, False
        elif field.startswith("branch "):
            branch = field[len("branch ") :].removeprefix("refs/heads/")
        elif field == "bare":
            bare = True
        elif not field and path is not None:
            result.append((path, branch, bare))
            path = None
    return result
