"""Fan-out: a task with `matrix:` or `for_each:` becomes one task per combination.

Done once, when the file is loaded, so that `validate`, `plan`, a run, a resume and the
up-to-date check all see the same expanded tasks. The combinations follow GitHub Actions'
``strategy.matrix``: the product of the lists in key order (the first key varies
slowest), minus every combination an ``exclude:`` entry matches (a partial match is
enough), then each ``include:`` entry is added to every combination whose original values
it does not change, or becomes a combination of its own when it fits none.

An expansion's id is the task id with its original values, in key order:
``T5[module=auth,py=3.12]``; a ``for_each`` value is ``matrix.item`` and its expansion is
``T5[auth]``. ``{{ matrix.<key> }}`` is filled in here (``template.render``) in the title,
prompt, run, env values, inputs, outputs, touches and validators; a prompt file's text is
filled in when it is read.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conductor.spec.model import Task, Validator
from conductor.spec.template import render
from conductor.spec.yamlsrc import JsonPath

FOR_EACH_KEY = "item"  # `for_each: [a, b]` is `matrix.item`
SPECIAL = ("include", "exclude")


@dataclass(frozen=True)
class Combo:
    """One combination: its id, its values in key order, and where it was written."""

    id: str
    values: dict[str, str]
    origin: JsonPath


def is_fanout(task: Any) -> bool:
    return isinstance(task, dict) and ("matrix" in task or "for_each" in task)


def text(value: Any) -> str:
    """A matrix value as it is inserted into text and ids (YAML's spelling for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and value is not None


def expansion_id(template: str, values: Mapping[str, str], keys: Sequence[str] | None) -> str:
    """``T5[module=auth]`` (the ``keys`` shown, in order), or ``T5[auth]`` when ``keys`` is
    None (a ``for_each`` value)."""
    if keys is None:
        return f"{template}[{values[FOR_EACH_KEY]}]"
    return f"{template}[{','.join(f'{k}={values[k]}' for k in keys)}]"


# -- combinations -------------------------------------------------------------------------
# They read the data defensively: the checks call them on files the schema may reject.


def axes(matrix: Mapping[str, Any]) -> list[tuple[str, list[Any]]]:
    """(key, its values) of the matrix's lists, in key order (not include / exclude)."""
    return [(k, v) for k, v in matrix.items() if k not in SPECIAL and isinstance(v, list)]


def entries(matrix: Mapping[str, Any], kind: str) -> list[tuple[int, dict[str, str]]]:
    """(index, values as text) of the mappings of ``include:`` or ``exclude:``."""
    items = matrix.get(kind)
    out = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict):
            out.append((i, {str(k): text(v) for k, v in item.items() if scalar(v)}))
    return out


def combos(tid: str, task: Mapping[str, Any]) -> list[Combo]:
    """Every combination of a fan-out task, in order (duplicates kept: the checks name them)."""
    base: JsonPath = ("tasks", tid)
    if "for_each" in task:
        items = task["for_each"] if isinstance(task["for_each"], list) else []
        return [
            Combo(f"{tid}[{text(v)}]", {FOR_EACH_KEY: text(v)}, (*base, "for_each", i))
            for i, v in enumerate(items)
            if scalar(v)
        ]
    matrix = task.get("matrix")
    return _matrix_combos(tid, matrix) if isinstance(matrix, dict) else []


def _matrix_combos(tid: str, matrix: Mapping[str, Any]) -> list[Combo]:
    lists = axes(matrix)
    keys = [k for k, _ in lists]
    where: JsonPath = ("tasks", tid, "matrix")
    found: list[Combo] = []
    if lists and all(values for _, values in lists):
        excludes = [e for _, e in entries(matrix, "exclude")]
        for picks in itertools.product(*(list(enumerate(v)) for _, v in lists)):
            values = {k: text(v) for k, (_, v) in zip(keys, picks, strict=True)}
            if any(_matches(values, e) for e in excludes):
                continue
            origin = (*where, keys[-1], picks[-1][0])
            found.append(Combo(expansion_id(tid, values, keys), values, origin))
    return _include(tid, found, keys, entries(matrix, "include"), where)


def _matches(values: Mapping[str, str], entry: Mapping[str, str]) -> bool:
    return all(values.get(k) == v for k, v in entry.items())


def _include(
    tid: str, found: list[Combo], keys: list[str], includes: list[tuple[int, dict[str, str]]],
    where: JsonPath,
) -> list[Combo]:  # fmt: skip
    """GitHub's rule: an entry extends every original combination whose original values it
    keeps (added values may be overwritten), else it is a combination of its own."""
    original = len(found)
    for i, entry in includes:
        fixed = {k: v for k, v in entry.items() if k in keys}
        extra = {k: v for k, v in entry.items() if k not in keys}
        hits = [n for n in range(original) if _matches(found[n].values, fixed)]
        for n in hits:
            found[n].values.update(extra)
        if not hits:
            found.append(Combo(expansion_id(tid, entry, list(entry)), dict(entry),
                               (*where, "include", i)))  # fmt: skip
    return found


def keys_of(task: Mapping[str, Any]) -> list[str]:
    """Every key a fan-out task's placeholders may name (in some combination at least)."""
    if "for_each" in task:
        return [FOR_EACH_KEY]
    matrix = task.get("matrix")
    if not isinstance(matrix, dict):
        return []
    names = [k for k, _ in axes(matrix)]
    for _, entry in entries(matrix, "include"):
        names += [k for k in entry if k not in names]
    return names


def owners(tasks: Mapping[str, Any]) -> dict[str, list[str]]:
    """Fan-out task id -> the ids of its expansions, in order."""
    return {tid: [c.id for c in combos(tid, t)] for tid, t in tasks.items() if is_fanout(t)}


# -- building the expanded tasks ----------------------------------------------------------


def expand_tasks(raw: Mapping[str, Any], built: Mapping[str, Task]) -> dict[str, Task]:
    """``built`` (one Task per entry of the file) with every fan-out task replaced, in
    place, by its expansions; a dependency on a fan-out task becomes one on each of them."""
    out: dict[str, Task] = {}
    expanded: dict[str, list[str]] = {}
    for tid, task in built.items():
        spec = raw[tid]
        if not is_fanout(spec):
            out[tid] = task
            continue
        found = combos(tid, spec)
        expanded[tid] = [c.id for c in found]
        cap = spec.get("max_parallel")
        for combo in found:
            out[combo.id] = _expanded(task, tid, combo, cap)
    if not expanded:
        return out
    return {tid: _fan_in(t, expanded) for tid, t in out.items()}


def _fan_in(task: Task, expanded: Mapping[str, list[str]]) -> Task:
    if not any(d in expanded for d in task.deps):
        return task
    deps = dict.fromkeys(e for d in task.deps for e in expanded.get(d, [d]))
    return dataclasses.replace(task, deps=tuple(deps))


def fill(text_: str, values: Mapping[str, str]) -> str:
    """``text_`` with its ``{{ matrix.<key> }}`` placeholders filled in from ``values``."""
    return render(text_, lambda ref: values.get(ref.name), ("matrix",))


def _expanded(task: Task, tid: str, combo: Combo, cap: int | None) -> Task:
    def f(s: str) -> str:
        return fill(s, combo.values)

    def each(items: Iterable[str]) -> tuple[str, ...]:
        return tuple(f(s) for s in items)

    return dataclasses.replace(
        task,
        id=combo.id,
        template=tid,
        matrix=dict(combo.values),
        max_parallel=cap,
        title=f(task.title),
        prompt=None if task.prompt is None else f(task.prompt),
        run=None if task.run is None else f(task.run),
        env={k: f(v) for k, v in task.env.items()},
        inputs=each(task.inputs),
        outputs=each(task.outputs),
        touches=each(task.touches),
        validate=tuple(_validator(v, f) for v in task.validate),
    )


def _validator(v: Validator, f: Any) -> Validator:
    return dataclasses.replace(
        v,
        run=None if v.run is None else f(v.run),
        paths=tuple(f(p) for p in v.paths),
        path=None if v.path is None else f(v.path),
        pattern=None if v.pattern is None else f(v.pattern),
    )
