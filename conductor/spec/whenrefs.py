"""Checks of `when:` conditions and `trigger:` rules, on the built workflow.

A condition must parse (spec/expr.py; the error points at the character inside the YAML
string), and what it names must exist when the task becomes ready: upstream tasks and
keys they declare (as for `{{ tasks.… }}`, refs.py), the task's own matrix keys. A group's
condition is checked for each of its tasks. A trigger rule that reacts to dependencies
(one_failed, one_success) on a task without any is a mistake.
"""

from __future__ import annotations

import re
from typing import Any

from conductor.spec.expr import ExprError, parse
from conductor.spec.model import Task
from conductor.spec.refs import Problem, RefChecker
from conductor.spec.suggest import did_you_mean
from conductor.spec.template import Ref
from conductor.spec.yamlsrc import JsonPath

REACTIVE = ("one_failed", "one_success")


def check_conditions(checker: RefChecker, task: Task) -> None:
    """Every problem with the task's `when:` conditions (its group's and its own)."""
    for path, text in _conditions(checker, task):
        try:
            expr = parse(text)
        except ExprError as exc:
            where = checker.position(path, exc.offset)
            checker.problem(path, where, f"invalid condition: {exc.what}", exc.hint)
            continue
        for ref in expr.refs():
            problem = _ref_problem(checker, task, ref)
            if problem is not None:
                where = checker.position(path, _offset(text, ref.text))
                checker.problem(path, where, *problem)


def check_trigger(checker: RefChecker, task: Task) -> None:
    if task.trigger in REACTIVE and not task.deps:
        path: JsonPath = ("tasks", task.template or task.id, "trigger")
        what = "a failure" if task.trigger == "one_failed" else "a success"
        message = f"`{task.trigger}` waits for {what} among the task's dependencies, and "
        hint = "add `depends_on`, or drop `trigger`"
        checker.problem(path, checker.src.where(path), message + f"{task.id} has none", hint)


def _offset(text: str, name: str) -> int:
    """Where the reference ``name`` is written in the condition (0: not found as such)."""
    found = re.search(rf"(?<![\w.\-\]]){re.escape(name)}(?![\w.\-\[])", text)
    return found.start() if found else 0


def _conditions(checker: RefChecker, task: Task) -> list[tuple[JsonPath, str]]:
    """(where it is written, text) of each condition the task must meet."""
    out: list[tuple[JsonPath, str]] = []
    group = checker.wf.groups.get(task.group) if task.group else None
    if group is not None and group.when:
        out.append((("groups", group.id, "when"), group.when))
    raw_id = task.template or task.id
    raw: Any = checker.src.data.get("tasks", {}).get(raw_id, {})
    own = raw.get("when") if isinstance(raw, dict) else None
    if isinstance(own, str):
        out.append((("tasks", raw_id, "when"), own))
    return out


def _ref_problem(checker: RefChecker, task: Task, ref: Ref) -> Problem | None:
    if ref.root == "tasks":
        return checker.task_ref_problem(task, ref)
    if ref.root != "matrix":
        return None  # env: whatever the environment holds when the task becomes ready
    keys = task.matrix
    if not keys:
        return (f"`matrix.{ref.name}`: task {task.id} has no `matrix:` or `for_each:`",
                "a condition may name matrix keys only in a fan-out task")  # fmt: skip
    if ref.name not in keys:
        hint = did_you_mean(ref.name, keys) or "its keys: " + ", ".join(keys)
        owner = task.template or task.id  # one message for all its expansions
        return f"`matrix.{ref.name}`: the matrix of {owner} has no key `{ref.name}`", hint
    return None
