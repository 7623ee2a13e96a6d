"""What a commit holds, and why a file on disk is not in it: for checking an attempt's
declared ``outputs`` in its post-commit rather than in its worktree.

A file the agent wrote that ``.gitignore`` excludes is on disk but never committed, so it
never reaches the integration branch; the check must look where the work really goes.
Both questions name the repository's git directory explicitly (``--git-dir``), so they
never go through whatever ``.git`` an agent left in its worktree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conductor.git import cmd as gitcmd


def commit_paths(git_dir: Path, commit: str, prefixes: Sequence[str] = ()) -> set[str]:
    """Every file and directory path in ``commit``'s tree, limited to ``prefixes`` (literal
    repository-relative paths: each one and what is under it) when given.

    One ``ls-tree`` process; ``-t`` lists the directories too, so a declared output that
    is a directory (``build/``) is found like a file.
    """
    args = ["--git-dir", str(git_dir), "ls-tree", "-r", "-t", "-z", "--name-only"]
    args += ["--full-tree", commit, "--", *prefixes]
    out = gitcmd.git([*gitcmd.NO_HOOKS, *args], git_dir, c_locale=True)
    return {p for p in out.split("\0") if p}


@dataclass(frozen=True)
class IgnoreRule:
    """The exclude rule that matches a path: ``source:line: pattern``."""

    source: str  # ".gitignore", "sub/.gitignore", "<git dir>/info/exclude", a global file
    line: int
    pattern: str

    def describe(self) -> str:
        return f"{self.source}:{self.line}: `{self.pattern}`"


def ignore_rules(git_dir: Path, worktree: Path, paths: Sequence[str]) -> dict[str, IgnoreRule]:
    """path -> the rule that makes git ignore it, for the ``paths`` (relative to
    ``worktree``) that are ignored; the others are left out.

    ``--no-index``: the question is what the rules say, not whether the path happens to be
    tracked; it is only asked about paths the attempt's commit lacks.
    """
    if not paths:
        return {}
    args = ["--git-dir", str(git_dir), "--work-tree", str(worktree), "check-ignore"]
    args += ["--no-index", "-v", "-z", "--stdin"]  # -z needs --stdin: any name survives
    stdin = "".join(f"{p}\0" for p in paths)
    res = gitcmd.run([*gitcmd.NO_HOOKS, *args], worktree, input=stdin, c_locale=True)
    if res.returncode not in (0, 1):  # 1: none of them is ignored
        raise res.error()
    fields = res.stdout.split("\0")
    rules: dict[str, IgnoreRule] = {}
    for i in range(0, len(fields) - 3, 4):  # source NUL line NUL pattern NUL path NUL
        source, line, pattern, path = fields[i : i + 4]
        if source and not pattern.startswith("!"):  # -v shows negations too: not ignored
            rules[path] = IgnoreRule(source, int(line) if line.isdigit() else 0, pattern)
    return rules
