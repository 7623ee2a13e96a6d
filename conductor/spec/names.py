"""What a name or a value in a workflow file may look like, as plain string rules.

Task and group ids and the workflow name become components of git branch and directory
names, so they follow `git check-ref-format`; the integration branch is a whole ref.
Environment values may reference ``${VAR}``; a malformed reference is a spec problem.
Pure string predicates, kept apart from the checks (``checks``) that apply them.
"""

from __future__ import annotations

import hashlib
import re

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_REF_BAD_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# `T5[module=auth,py=3.12]`: keys and values of letters, digits, `_` and `.` map to
# `T5-module-auth-py-3.12` and back without ambiguity; anything else gets a hash.
_CANONICAL = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]*\[(?:[A-Za-z0-9_.]+=)?[A-Za-z0-9_.]+(?:,[A-Za-z0-9_.]+=[A-Za-z0-9_.]+)*\]"
)
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._]+")
MAX_COMPONENT = 80  # a value may be long; a branch and directory name should not be


def resolve_env_refs(value: str) -> list[str]:
    """Names of the ``${VAR}`` references in ``value``, in order, without repeats."""
    return list(dict.fromkeys(_ENV_REF.findall(value)))


def env_ref_problem(value: str) -> str | None:
    """Why ``value``'s ``${...}`` syntax is malformed, or None when it is fine."""
    start = value.find("${")
    while start != -1:
        match = _ENV_REF.match(value, start)
        if match is None:
            end = value.find("}", start)
            shown = value[start : end + 1] if end != -1 else value[start:]
            return f"malformed variable reference `{shown}`: use ${{NAME}}"
        start = value.find("${", match.end())
    return None


def component_problem(name: str) -> str | None:
    """Why ``name`` cannot be one component of a git branch or directory, or None."""
    if ".." in name:
        return "contains `..`"
    if name.endswith(".lock"):
        return "ends with `.lock`"
    if name.endswith("."):
        return "ends with `.`"
    if "@{" in name:
        return "contains `@{`"
    if name.startswith(("-", ".")):
        return f"starts with `{name[0]}`"
    return None


def ref_problem(ref: str) -> str | None:
    """Why ``ref`` is not a valid git branch name (after `git check-ref-format`), or None."""
    bad = _REF_BAD_CHARS.search(ref)
    if bad:
        return "contains a space" if bad.group() == " " else f"contains `{bad.group()!s}`"
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        return "has an empty path component"
    if ref == "@":
        return "is `@`"
    for part in ref.split("/"):
        why = component_problem(part)
        if why:
            return why
    return None


def task_component(task_id: str) -> str:
    """The task id as one component of a branch or directory name (deterministic).

    Plain ids are used as written. A matrix expansion's id (``T5[module=auth]``) holds
    characters git refuses, so it becomes ``T5-module-auth``; when that could be ambiguous
    or unsafe (other characters, ``..``, a very long value) a short hash of the id is
    appended, ``T5-module-a-b-3f2a9c1e``. ``spec`` refuses ids that collide after this.
    """
    if _PLAIN_ID.fullmatch(task_id) and component_problem(task_id) is None:
        return task_id
    base = _UNSAFE_RUN.sub("-", task_id.replace("]", "")).strip("-")
    if (
        _CANONICAL.fullmatch(task_id)
        and len(base) <= MAX_COMPONENT
        and component_problem(base) is None
    ):
        return base
    base = re.sub(r"\.{2,}", ".", base)[:MAX_COMPONENT].strip("-.") or "task"
    digest = hashlib.sha256(task_id.encode("utf-8")).hexdigest()[:8]
    return f"{base}-{digest}"
