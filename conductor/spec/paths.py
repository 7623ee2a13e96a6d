"""Paths in a workflow file that could reach outside the repository, refused up front.

``outputs``, ``inputs``, the ``exists`` and ``contains`` validators and ``workspace.copy`` /
``symlink`` name files in a task's worktree; ``log:`` names a file in the repository. Today
they are joined to a directory (``root / path``), and ``Path("/wt") / "/etc/passwd"`` is
``/etc/passwd``: an absolute path, or one that climbs out with ``..``, would let a check be
satisfied by (or a log overwrite) a file anywhere on the machine, and a path into ``.git``
lets ``log: .git/HEAD`` destroy the repository. Pure string rules: spec knows no repository
root, so ``prompt_file`` (relative to the workflow file, which may sit in a subdirectory) is
only refused here when absolute; preflight resolves it against the real root.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

from conductor.errors import Diagnostic
from conductor.spec.yamlsrc import JsonPath, Source, dotted

WORKTREE_HINT = (
    "paths are relative to the task's worktree; write `build/out.txt`, not `/tmp/out.txt`"
)
ESCAPE_HINT = "paths are relative to the task's worktree and must stay inside it"
GIT_HINT = "`.git` is git's own data: no declared path may point into it"
LOG_HINT = (
    "`log:` is relative to the repository root, e.g. `logs/{run}.md` "
    "(leave it out for .conductor/runs/<run>/EXECUTION_LOG.md)"
)
WORKSPACE_HINT = (
    "workspace.copy and workspace.symlink name paths relative to the repository root, "
    "placed at the same path in each worktree (e.g. `.env`, `node_modules`)"
)

REUSE_HINT = (
    "workspace.reuse names paths relative to the repository root: `keep` the ignored "
    "directories setup makes (e.g. `node_modules`), `key` the files that decide them "
    "(e.g. `package-lock.json`)"
)


def path_problem(value: str, where: str = "the worktree") -> str | None:
    """Why ``value`` (a relative path, maybe a glob) could leave ``where``, or None.

    ``..`` is followed segment by segment, not just in the literal prefix of a glob:
    ``glob`` expands ``*/../..`` too. A wildcard segment counts as one directory down,
    ``**`` as none (it may match no directory at all), so the estimate never flatters.
    """
    if value.startswith("/"):
        return f"`{value}` is an absolute path"
    depth = 0
    for seg in value.split("/"):
        if seg.casefold() == ".git":
            return f"`{value}` is inside `.git`"
        if seg in ("", ".", "**"):
            continue
        depth += -1 if seg == ".." else 1
        if depth < 0:
            return f"`{value}` leads outside {where} (through `..`)"
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> Iterator[tuple[int, str]]:
    for i, item in enumerate(value if isinstance(value, list) else []):
        if isinstance(item, str):
            yield i, item


def _validator_paths(base: JsonPath, validators: Any) -> Iterator[tuple[JsonPath, str]]:
    for i, item in enumerate(validators if isinstance(validators, list) else []):
        item = _dict(item)
        for j, path in _items(item.get("exists")):
            yield (*base, "validate", i, "exists", j), path
        target = _dict(item.get("contains")).get("path")
        if isinstance(target, str):
            yield (*base, "validate", i, "contains", "path"), target


def _worktree_paths(data: dict[str, Any]) -> Iterator[tuple[JsonPath, str]]:
    """(where, path) of every worktree-relative path the file declares."""
    for tid, task in _dict(data.get("tasks")).items():
        task = _dict(task)
        for key in ("inputs", "outputs"):
            for i, path in _items(task.get(key)):
                yield ("tasks", tid, key, i), path
        yield from _validator_paths(("tasks", tid), task.get("validate"))
    for gid, group in _dict(data.get("groups")).items():
        yield from _validator_paths(("groups", gid), _dict(group).get("validate"))


def path_problems(src: Source) -> list[Diagnostic]:
    """Every declared path that could reach outside the repository, located at its value."""
    out: list[Diagnostic] = []

    def report(path: JsonPath, why: str | None, hint: str) -> None:
        if why is not None:
            hint = GIT_HINT if "`.git`" in why else hint
            out.append(src.diag(path, f"{dotted(path)}: {why}", hint))

    data = src.data
    for where, value in _worktree_paths(data):
        why = path_problem(value)
        report(where, why, WORKTREE_HINT if why and "absolute" in why else ESCAPE_HINT)
    workspace = _dict(data.get("workspace"))
    for key in ("copy", "symlink"):
        for i, value in _items(workspace.get(key)):
            report(("workspace", key, i), path_problem(value, "the repository"), WORKSPACE_HINT)
    reuse = _dict(workspace.get("reuse"))
    for key in ("keep", "key"):
        for i, value in _items(reuse.get(key)):
            report(("workspace", "reuse", key, i), path_problem(value, "the repository"),
                   REUSE_HINT)  # fmt: skip
    log = data.get("log")
    if isinstance(log, str):
        why = path_problem(log, "the repository")
        if why is None and posixpath.normpath(log) == ".":
            why = f"`{log}` is the repository itself, not a file in it"
        report(("log",), why, LOG_HINT)
    return out
