"""Fan-out as the views show it: expansions gathered under the task they came from.

`plan`, `list`, `graph`, the live view and the execution log list a fan-out task's
expansions beneath its id (``T5`` as a heading, ``T5[module=auth]`` … under it) instead
of as unrelated rows; a dependency on all of them is shown as the one id written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from conductor.spec.model import Workflow


def by_template(wf: Workflow, ids: Iterable[str]) -> Iterator[tuple[str | None, list[str]]]:
    """``ids`` in order, an expansion's run gathered under its template at the place of
    its first expansion: (None, [plain id]) or (template, [its expansions among ids])."""
    order: dict[str | None, list[str]] = {}
    items: list[tuple[str | None, list[str]]] = []
    for tid in ids:
        task = wf.tasks.get(tid)
        template = task.template if task is not None else None
        if template is None:
            items.append((None, [tid]))
        elif template in order:
            order[template].append(tid)
        else:
            order[template] = [tid]
            items.append((template, order[template]))
    yield from items


def collapse(wf: Workflow, ids: Sequence[str]) -> list[str]:
    """``ids`` with every complete set of a template's expansions written as the template."""
    members = expansions(wf)
    chosen, out = set(ids), []
    for tid in ids:
        template = wf.tasks[tid].template if tid in wf.tasks else None
        if template is not None and chosen.issuperset(members[template]):
            if template not in out:
                out.append(template)
        else:
            out.append(tid)
    return out


def suffix(task_id: str, template: str) -> str:
    """``T5[module=auth]`` under its heading ``T5`` is shown as ``[module=auth]``."""
    return task_id[len(template) :] if task_id.startswith(template + "[") else task_id


def expansions(wf: Workflow) -> dict[str, list[str]]:
    """Template id -> its expansions, in file order (empty without fan-out)."""
    out: dict[str, list[str]] = {}
    for task in wf.tasks.values():
        if task.template is not None:
            out.setdefault(task.template, []).append(task.id)
    return out


def note(wf: Workflow, template: str, shown: Sequence[str]) -> str:
    """``matrix: 3 of 6 tasks, at most 2 at once`` for a heading (``shown`` of them listed)."""
    every = expansions(wf).get(template, [])
    first = wf.tasks.get(shown[0]) if shown else None
    kind = "for_each" if first is not None and list(first.matrix) == ["item"] else "matrix"
    count = (
        f"{len(every)} tasks" if len(shown) == len(every) else f"{len(shown)} of {len(every)} tasks"
    )
    cap = first.max_parallel if first is not None else None
    return f"{kind}: {count}" + (f", at most {cap} at once" if cap else "")
