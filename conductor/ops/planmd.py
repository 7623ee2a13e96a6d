"""A markdown checklist, the way phases are usually planned, read as a workflow's parts.

    # Phase 5.3: retry engine           the workflow's name (slug) and description
    ## GROUP_A: Foundation               a group (id before the colon, else a slug)
    - [ ] Schema: create the schema (4h)
          Use PostgreSQL 16; one migration per table.      <- the task's prompt
    - [ ] Auth: the login flow (after: Schema) (2h)
    - [x] Spike: done already            a done item: no task; `after: Spike` is met

Each `- [ ]` item is a task: its id is the text before the first colon, the rest its
title; text indented under it is its prompt (else the title is); `(after: A, B)` are its
dependencies and `(4h)` its estimate. Every problem is reported with its line
(``PLAN.md:LINE``), all at once; nothing here writes anything.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from conductor.errors import Diagnostic
from conductor.spec.durations import parse_duration
from conductor.spec.suggest import did_you_mean

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ITEM = re.compile(r"^(\s*)[-*+]\s+\[([ xX])\]\s*(.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_AFTER = re.compile(r"\(\s*after\s*:\s*([^)]*)\)", re.I)
_ESTIMATE = re.compile(r"\(\s*([0-9][0-9dhms]*)\s*\)")


@dataclass
class PlanTask:
    id: str
    title: str
    line: int
    group: str | None = None
    after: list[str] = field(default_factory=list)
    estimate: str | None = None
    prompt: list[str] = field(default_factory=list)  # the indented lines under the item
    indent: int = 0


@dataclass
class PlanGroup:
    id: str
    description: str
    line: int


@dataclass
class Plan:
    """What the checklist says: title, groups, tasks, done items, and its problems."""

    title: str = ""
    intro: list[str] = field(default_factory=list)
    groups: list[PlanGroup] = field(default_factory=list)
    tasks: list[PlanTask] = field(default_factory=list)
    done: dict[str, int] = field(default_factory=dict)  # checked items: id -> line
    problems: list[Diagnostic] = field(default_factory=list)


def slug(text: str) -> str:
    """``Phase 5.3: Retry engine`` -> ``phase-5.3-retry-engine`` (a workflow name)."""
    out = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return out[:60].rstrip("-._") or "plan"


def read_plan(path: Path, shown: str | None = None) -> Plan:
    """Parse the checklist at ``path``; ``shown`` is how messages name it."""
    text = path.read_text(encoding="utf-8")
    return parse_plan(text, shown or str(path))


def parse_plan(text: str, where: str) -> Plan:
    plan = Plan()
    current: PlanTask | None = None
    group: str | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        item, head = _ITEM.match(raw), _HEADING.match(raw)
        if current is not None and not item and not head and _under(raw, current):
            current.prompt.append(raw)
            continue
        current = None
        if head:
            group = _heading(plan, head, n, where)
        elif item:
            current = _item(plan, item, group, n, where)
        elif group is None and not plan.groups and raw.strip() and plan.title:
            plan.intro.append(raw.strip())
    _check(plan, where)
    return plan


def _under(raw: str, task: PlanTask) -> bool:
    """A blank line, or one indented deeper than the item's marker, belongs to it."""
    return not raw.strip() or len(raw) - len(raw.lstrip()) > task.indent


def _heading(plan: Plan, m: re.Match[str], n: int, where: str) -> str | None:
    level, text = len(m.group(1)), m.group(2).strip()
    if level == 1:
        plan.title = plan.title or text
        return None
    if level > 2:
        return plan.groups[-1].id if plan.groups else None  # a sub-heading stays in its group
    gid, desc = _split(text)
    if gid is None:
        gid, desc = slug(text).replace(".", "-"), text
    if any(g.id == gid for g in plan.groups):
        first = next(g.line for g in plan.groups if g.id == gid)
        plan.problems.append(Diagnostic(f"group `{gid}` is a heading twice (first at line "
                                        f"{first})", where, n, 1))  # fmt: skip
    plan.groups.append(PlanGroup(gid, desc, n))
    return gid


def _split(text: str) -> tuple[str | None, str]:
    """(`Id`, rest) when ``text`` starts with an id and a colon, else (None, text)."""
    head, colon, rest = text.partition(":")
    if colon and _ID.fullmatch(head.strip()):
        return head.strip(), rest.strip()
    return None, text


def _item(plan: Plan, m: re.Match[str], group: str | None, n: int, where: str) -> PlanTask | None:
    indent, mark, text = len(m.group(1)), m.group(2), m.group(3)
    after = [a.strip() for found in _AFTER.findall(text) for a in found.split(",") if a.strip()]
    text = _AFTER.sub("", text)
    estimates = [e for e in _ESTIMATE.findall(text) if _duration(e)]
    text = _ESTIMATE.sub(lambda e: "" if _duration(e.group(1)) else e.group(0), text)
    tid, title = _split(text.strip())
    if tid is None:
        plan.problems.append(Diagnostic(
            "checklist item without a task id", where, n, indent + 1,
            hint='write it as "- [ ] Id: what to do" (the id before the first colon: '
                 "letters, digits, '.', '_', '-')"))  # fmt: skip
        return None
    if mark != " ":
        plan.done[tid] = n
        return None
    task = PlanTask(tid, " ".join(title.split()), n, group, after, estimates[-1] if estimates
                    else None, indent=indent)  # fmt: skip
    plan.tasks.append(task)
    return task


def _duration(text: str) -> bool:
    try:
        return parse_duration(text) > 0 and not text.isdigit()
    except ValueError:
        return False


def _check(plan: Plan, where: str) -> None:
    """Ids twice, `after:` naming nothing, an empty plan."""
    seen: dict[str, int] = {}
    for t in plan.tasks:
        if t.id in seen or t.id in plan.done:
            first = seen.get(t.id) or plan.done[t.id]
            plan.problems.append(Diagnostic(f"task `{t.id}` is listed twice (first at line "
                                            f"{first})", where, t.line, t.indent + 1))  # fmt: skip
        seen.setdefault(t.id, t.line)
    known = [*seen, *plan.done]
    for t in plan.tasks:
        for a in t.after:
            if a not in known:
                plan.problems.append(Diagnostic(
                    f"task `{t.id}`: `after: {a}` names no item of the plan", where, t.line,
                    t.indent + 1, hint=did_you_mean(a, known)))  # fmt: skip
            elif a == t.id:
                plan.problems.append(Diagnostic(f"task `{t.id}` comes after itself", where,
                                                t.line, t.indent + 1))  # fmt: skip
    _cycles(plan, where)
    if not plan.tasks and not plan.problems:
        plan.problems.append(Diagnostic(
            "no open checklist item: nothing to turn into tasks", where, 1, 1,
            hint='list each task as "- [ ] Id: what to do"'))  # fmt: skip


def _cycles(plan: Plan, where: str) -> None:
    """`after:` that loop back (A after B, B after A): one problem per loop."""
    deps = {t.id: [a for a in t.after if a != t.id] for t in plan.tasks}
    line = {t.id: t.line for t in plan.tasks}
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(tid: str, path: list[str]) -> None:
        state[tid] = 1
        for d in deps.get(tid, []):
            if state.get(d) == 1:
                loop = [*path[path.index(d):], d] if d in path else [tid, d]
                plan.problems.append(Diagnostic(
                    "the items come after each other: " + " -> ".join(loop), where,
                    line[loop[0]], 1, hint="take one `after:` out of the loop"))  # fmt: skip
            elif d in deps and d not in state:
                visit(d, [*path, d])
        state[tid] = 2

    for tid in deps:
        if tid not in state:
            visit(tid, [tid])


def prompt_of(task: PlanTask) -> str:
    """The indented text under the item, dedented; else its title."""
    body = textwrap.dedent("\n".join(task.prompt)).strip("\n")
    return body or task.title or task.id
