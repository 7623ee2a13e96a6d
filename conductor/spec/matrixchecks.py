"""The `validate` checks of fan-out (`matrix:` / `for_each:` / `max_parallel`).

What the schema cannot say: an empty list, a value listed twice, an `exclude:` key the
matrix lacks, a combination `include:` adds twice, a matrix left with no combination,
`{{ matrix.<key> }}` naming a key the task's matrix does not have (or used without one),
filled-in paths that leave the worktree, and expansion ids that become the same branch or
directory name. Like the other checks they read the data defensively, and each problem
is located at the value (or key) that causes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from conductor.errors import Diagnostic
from conductor.spec import matrix as mx
from conductor.spec.names import env_ref_problem, task_component
from conductor.spec.paths import ESCAPE_HINT, path_problem
from conductor.spec.suggest import did_you_mean
from conductor.spec.template import _PLACEHOLDER, TemplateError, parse_ref, placeholders
from conductor.spec.yamlsrc import JsonPath, Source, dotted

EMPTY_HINT = "give the list at least one value, or leave the key out"
NO_MATRIX_HINT = "add `matrix:` (or `for_each:`) to the task, or write the value out"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[tuple[int, Any]]:
    return list(enumerate(value)) if isinstance(value, list) else []


class FanoutChecker:
    """Collects the fan-out problems of one file; ``run()`` returns them."""

    def __init__(self, src: Source, tasks: Mapping[str, Any], base_dir: Path) -> None:
        self.src = src
        self.tasks = tasks
        self.base_dir = base_dir
        self.combos = {t: mx.combos(t, s) for t, s in tasks.items() if mx.is_fanout(s)}
        self.out: list[Diagnostic] = []

    def at(self, path: JsonPath, message: str, hint: str | None = None, key: bool = False) -> None:
        make = self.src.key_diag if key else self.src.diag
        self.out.append(make(path, f"{dotted(path)}: {message}", hint))

    def run(self) -> list[Diagnostic]:
        for tid, raw in self.tasks.items():
            task = _dict(raw)
            if mx.is_fanout(task):
                self.check_fanout(tid, task)
            elif "max_parallel" in task:
                self.at(("tasks", tid, "max_parallel"), "`max_parallel` needs `matrix` or "
                        "`for_each`", "it caps how many expansions of one task run at once",
                        key=True)  # fmt: skip
            if not mx.is_fanout(task) or _well_formed(task):
                self.check_placeholders(tid, task)
        self.check_names()
        return self.out

    # -- the matrix itself -------------------------------------------------------------

    def check_fanout(self, tid: str, task: dict[str, Any]) -> None:
        base: JsonPath = ("tasks", tid)
        if "matrix" in task and "for_each" in task:
            hint = f"`for_each: [...]` is `matrix: {{{mx.FOR_EACH_KEY}: [...]}}`"
            message = "`matrix` and `for_each` cannot be used together"
            self.at((*base, "for_each"), message, hint, key=True)
        if "for_each" in task:
            self.check_list((*base, "for_each"), task["for_each"])
        else:
            matrix = _dict(task.get("matrix"))
            for key, values in mx.axes(matrix):
                self.check_list((*base, "matrix", key), values)
            self.check_entries(tid, matrix)
        if _well_formed(task):  # else the schema's messages say it all
            self.check_combos(tid, task)

    def check_list(self, path: JsonPath, values: Any) -> None:
        if not isinstance(values, list):
            return  # the schema's to report
        if not values:
            self.at(path, "an empty list expands to no tasks", EMPTY_HINT)
        seen: set[str] = set()
        for i, value in _items(values):
            if not mx.scalar(value):
                continue
            shown = mx.text(value)
            if shown in seen:
                self.at((*path, i), f"`{shown}` is listed twice: its task would run twice",
                        "remove the repeated value")  # fmt: skip
            seen.add(shown)

    def check_entries(self, tid: str, matrix: dict[str, Any]) -> None:
        keys = [k for k, _ in mx.axes(matrix)]
        for i, entry in mx.entries(matrix, "exclude"):
            for key in entry:
                if key not in keys:
                    hint = did_you_mean(key, keys) or "exclude names keys of the matrix's lists"
                    path = ("tasks", tid, "matrix", "exclude", i, key)
                    self.at(path, f"unknown matrix key `{key}`", hint, key=True)

    def check_combos(self, tid: str, task: dict[str, Any]) -> None:
        found = self.combos[tid]
        if not found and "for_each" not in task and self._lists_filled(task):
            self.at(("tasks", tid, "matrix"), "no combination is left: the matrix expands "
                    "to no tasks", "check `exclude:`, or add a combination with `include:`",
                    key=True)  # fmt: skip
        seen: set[str] = set()
        for combo in found:
            if combo.id in seen and "include" in combo.origin:
                self.at(combo.origin, f"adds `{combo.id}` a second time",
                        "remove the repeated entry")  # fmt: skip
            seen.add(combo.id)

    @staticmethod
    def _lists_filled(task: dict[str, Any]) -> bool:
        matrix = _dict(task.get("matrix"))
        return all(values for _, values in mx.axes(matrix)) and "matrix" in task

    # -- {{ matrix.<key> }} --------------------------------------------------------------

    def check_placeholders(self, tid: str, task: dict[str, Any]) -> None:
        fanout = mx.is_fanout(task)
        keys = mx.keys_of(task) if fanout else []
        for path, text in _texts(("tasks", tid), task):
            self.check_text(tid, path, text, keys, fanout, "")
            if fanout:
                self.check_filled(tid, path, text)
        name = task.get("prompt_file")
        if isinstance(name, str) and name and not name.startswith("/"):
            body = _read(self.base_dir / name)
            if body is not None:
                path = ("tasks", tid, "prompt_file")
                self.check_text(tid, path, body, keys, fanout, f"prompt file `{name}`: ")

    def check_text(self, tid: str, path: JsonPath, text: str, keys: list[str], fanout: bool,
                   where: str) -> None:  # fmt: skip
        for m in _PLACEHOLDER.finditer(text) if "{{" in text else ():
            ref = parse_ref(m.group(1))
            if ref is None:
                if fanout or m.group(1).startswith("matrix."):
                    self.at(path, where + _malformed(m.group(0)))
            elif ref.root != "matrix":
                continue
            elif not fanout:
                self.at(path, f"{where}`{m.group(0)}` is used in a task without `matrix:` or "
                        "`for_each:`", NO_MATRIX_HINT)  # fmt: skip
            elif ref.name not in keys:
                hint = did_you_mean(ref.name, keys) or "matrix keys: " + ", ".join(keys)
                self.at(path, f"{where}`{m.group(0)}`: the matrix has no key `{ref.name}`", hint)
            else:
                self.check_everywhere(tid, path, ref.name, where)

    def check_everywhere(self, tid: str, path: JsonPath, key: str, where: str) -> None:
        lacking = [c.id for c in self.combos.get(tid, []) if key not in c.values]
        if lacking:
            more = f" (and {len(lacking) - 1} more)" if len(lacking) > 1 else ""
            message = f"{where}`{{{{ matrix.{key} }}}}` has no value in `{lacking[0]}`{more}"
            self.at(path, message, f"give every combination a `{key}`, e.g. with `include:`")

    def check_filled(self, tid: str, path: JsonPath, text: str) -> None:
        """A filled-in path must stay in the worktree, an env value stay well-formed, a
        pattern stay a regular expression, whatever the values put into them."""
        rule = _rule_of(path)
        if rule is None or "{{" not in text:
            return
        for combo in self.combos.get(tid, []):
            try:
                why = rule(mx.fill(text, combo.values))
            except TemplateError:
                return  # reported by check_text
            if why is not None:
                self.at(path, f"in `{combo.id}`: {why}", ESCAPE_HINT if rule is _path else None)
                return

    # -- names ---------------------------------------------------------------------------

    def check_names(self) -> None:
        """Expansion ids are made branch-safe (``task_component``); two ids that end up
        the same would share branches, worktrees and logs."""
        owner: dict[str, str] = {task_component(t): t for t in self.tasks}
        for found in self.combos.values():
            for combo in found:
                name = task_component(combo.id)
                other = owner.setdefault(name, combo.id)
                if other != combo.id:
                    message = f"`{combo.id}` and `{other}` would both be named `{name}` in "
                    hint = "rename one of the tasks, or change the value"
                    self.at(combo.origin, message + "branches and directories", hint)


def _well_formed(task: dict[str, Any]) -> bool:
    """One of `matrix` (of lists) and `for_each` (a list): what the combinations need."""
    if "for_each" in task:
        return "matrix" not in task and isinstance(task["for_each"], list)
    matrix = task.get("matrix")
    if not isinstance(matrix, dict):
        return False
    return all(isinstance(v, list) for v in matrix.values())


def _malformed(shown: str) -> str:
    """template's own message for a placeholder it cannot read (one wording everywhere)."""
    try:
        list(placeholders(shown))
    except TemplateError as exc:
        return str(exc)
    return f"`{shown}` cannot be read"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None


def _texts(base: JsonPath, task: dict[str, Any]) -> Iterator[tuple[JsonPath, str]]:
    """(where, text) of every field `{{ matrix.<key> }}` is filled in in."""
    for key in ("title", "prompt", "run"):
        if isinstance(task.get(key), str):
            yield (*base, key), task[key]
    for name, value in _dict(task.get("env")).items():
        if isinstance(value, str):
            yield (*base, "env", name), value
    for key in ("inputs", "outputs", "touches"):
        for i, item in _items(task.get(key)):
            if isinstance(item, str):
                yield (*base, key, i), item
    for i, item in _items(task.get("validate")):
        yield from _validator_texts((*base, "validate", i), _dict(item))


def _validator_texts(path: JsonPath, item: dict[str, Any]) -> Iterator[tuple[JsonPath, str]]:
    if isinstance(item.get("run"), str):
        yield (*path, "run"), item["run"]
    for j, value in _items(item.get("exists")):
        if isinstance(value, str):
            yield (*path, "exists", j), value
    contains = _dict(item.get("contains"))
    for key in ("path", "pattern"):
        if isinstance(contains.get(key), str):
            yield (*path, "contains", key), contains[key]


def _path(value: str) -> str | None:
    return path_problem(value)


def _pattern(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    return None


def _rule_of(path: JsonPath) -> Any:
    """The rule a filled-in value at ``path`` must keep (None: any text will do)."""
    if "env" in path[2:3]:
        return env_ref_problem
    if path[-1] == "pattern":
        return _pattern
    if path[2] in ("inputs", "outputs") or "exists" in path or path[-1] == "path":
        return _path
    return None
