"""The dependency graph of a workflow's tasks: expanded deps, selection, levels and cycles.

Pure: no git, no processes, no clock. The graph algorithms are plain Python over the
tasks' dependency tuples rather than networkx, because importing networkx costs about
0.2 s and ``conductor validate`` / ``conductor plan`` must start fast; ``task_graph``
still hands out a networkx DiGraph (imported lazily) for callers that want one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from conductor.errors import UserError
from conductor.spec.fanout import expansions
from conductor.spec.model import Task, Workflow

if TYPE_CHECKING:
    import networkx as nx


# ---------------------------------------------------------------- dependencies


def task_deps(
    wf: Workflow, task: Task, members: Mapping[str, Sequence[str]] | None = None
) -> tuple[str, ...]:
    """The task's expanded dependencies.

    ``spec`` fills ``Task.deps``; a Workflow built by hand (tests, other tools) may only
    have ``depends_on`` and group edges, so expand those here when ``deps`` is empty.
    The two agree whenever ``deps`` is filled: it is a superset of both sources.
    ``members`` (group -> task ids) saves a scan of all tasks per call.
    """
    if task.deps:
        return task.deps
    out: dict[str, None] = dict.fromkeys(task.depends_on)
    group = wf.groups.get(task.group) if task.group else None
    if group is not None:
        for dep_group in group.depends_on:
            ids = members.get(dep_group, ()) if members is not None else wf.group_tasks(dep_group)
            out.update(dict.fromkeys(ids))
    return tuple(out)


def group_members(wf: Workflow) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for tid, task in wf.tasks.items():
        if task.group:
            out.setdefault(task.group, []).append(tid)
    return out


def _dep_map(wf: Workflow) -> dict[str, tuple[str, ...]]:
    """task -> deps, checked to name existing tasks."""
    deps: dict[str, tuple[str, ...]] = {}
    members = group_members(wf)
    for tid, task in wf.tasks.items():
        ds = task_deps(wf, task, members)
        for d in ds:
            if d not in wf.tasks:
                raise UserError(f"task {tid!r} depends on unknown task {d!r}", _hint(d, wf.tasks))
        deps[tid] = ds
    return deps


def _children(deps: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    kids: dict[str, list[str]] = {t: [] for t in deps}
    for tid, ds in deps.items():
        for d in ds:
            kids[d].append(tid)
    return kids


def task_graph(wf: Workflow) -> nx.DiGraph[str]:
    """The expanded task graph: an edge dep -> task, node attribute ``estimate_h``."""
    import networkx as nx  # lazily: see the module docstring

    g: nx.DiGraph[str] = nx.DiGraph()
    for tid, task in wf.tasks.items():
        g.add_node(tid, estimate_h=_hours(task))
    for tid, ds in _dep_map(wf).items():
        g.add_edges_from((d, tid) for d in ds)
    return g


def find_cycle(wf: Workflow) -> list[str] | None:
    """A dependency cycle in run order as ``[A, B, A]``, or None when the graph is acyclic."""
    deps = _dep_map(wf)
    order = list(wf.tasks)
    level = _levels(order, deps)
    return None if len(level) == len(order) else _cycle(order, deps, level)


def rerun_from(wf: Workflow, roots: Sequence[str], tasks: Sequence[str]) -> list[str]:
    """`run --from T`: T, everything downstream of it, and the tasks selected by name."""
    unknown = [t for t in roots if t not in wf.tasks and t not in expansions(wf)]
    if unknown:
        raise UserError(f"--from: unknown task `{unknown[0]}`", _hint(unknown[0], wf.tasks))
    return sorted(downstream(wf, roots) | set(tasks))


def downstream(wf: Workflow, task_ids: Iterable[str]) -> set[str]:
    """The given tasks plus everything that depends on them, transitively."""
    return _closure(_children(_dep_map(wf)), _named(wf, task_ids))


def upstream(wf: Workflow, task_ids: Iterable[str]) -> set[str]:
    """The given tasks plus everything they depend on, transitively."""
    return _closure(_dep_map(wf), _named(wf, task_ids))


def _closure(edges: Mapping[str, Sequence[str]], start: list[str]) -> set[str]:
    """``start`` and every task reachable from it along ``edges``."""
    todo, seen = list(start), set(start)
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# ---------------------------------------------------------------- selection


def _hint(name: str, choices: Iterable[str]) -> str | None:
    import difflib  # only on the error path

    # Compare case-insensitively: `--batch-group group_a` should find GROUP_A.
    by_lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.5)
    return f"did you mean {by_lower[close[0]]!r}?" if close else None


def _known_task(wf: Workflow, tid: str) -> str:
    if tid not in wf.tasks:
        raise UserError(f"unknown task {tid!r}", _hint(tid, wf.tasks))
    return tid


def _named(wf: Workflow, names: Iterable[str]) -> list[str]:
    """The tasks named on the command line; a fan-out task's id names all its expansions."""
    fanned = expansions(wf)
    out: list[str] = []
    for name in names:
        out += fanned[name] if name in fanned else [_known_task(wf, name)]
    return out


def _all_groups(wf: Workflow) -> list[str]:
    names = dict.fromkeys(wf.groups)
    names.update(dict.fromkeys(t.group for t in wf.tasks.values() if t.group))
    return list(names)


def select(
    wf: Workflow,
    *,
    groups: Sequence[str] = (),
    tasks: Sequence[str] = (),
    with_deps: bool = False,
) -> set[str]:
    """The task ids a plan covers; no groups and no tasks means every task."""
    if not groups and not tasks:
        return set(wf.tasks)
    known_groups = _all_groups(wf)
    chosen: set[str] = set()
    for g in groups:
        if g not in known_groups:
            raise UserError(f"unknown group {g!r}", _hint(g, known_groups))
        chosen.update(wf.group_tasks(g))
    chosen.update(_named(wf, tasks))
    return upstream(wf, chosen) if with_deps else chosen


# ---------------------------------------------------------------- levels and cycles


def _hours(task: Task) -> float:
    return (task.estimate_s or 0.0) / 3600.0


def _levels(
    order: Sequence[str],
    deps: Mapping[str, Sequence[str]],
    kids: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, int]:
    """Kahn's algorithm by generations: task -> depth. Tasks on or behind a cycle are
    missing from the result. ``deps`` must only name tasks in ``order``."""
    level: dict[str, int] = {}
    pending = {t: len(deps[t]) for t in order}
    kids = _children(deps) if kids is None else kids
    frontier = [t for t in order if pending[t] == 0]
    depth = 0
    while frontier:
        nxt: list[str] = []
        for t in frontier:
            level[t] = depth
            for k in kids[t]:
                pending[k] -= 1
                if pending[k] == 0:
                    nxt.append(k)
        frontier, depth = nxt, depth + 1
    return level


def _cycle(
    order: Sequence[str], deps: Mapping[str, Sequence[str]], done: Mapping[str, int]
) -> list[str]:
    """Walk unresolved deps from an unresolved task until a task repeats.

    Every unresolved task has an unresolved dep, so the walk always closes a cycle.
    """
    node = next(t for t in order if t not in done)
    seen: dict[str, int] = {}
    while node not in seen:
        seen[node] = len(seen)
        node = next(d for d in deps[node] if d not in done)
    walk = list(seen)
    cyc = [*walk[seen[node] :], node]
    return cyc[::-1]  # the walk follows deps backwards in time; report it in run order
