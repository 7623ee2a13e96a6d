"""Selection, waves, critical path and makespan estimates of a workflow's task graph.

Pure: no git, no processes, no clock. The graph algorithms are plain Python over the
tasks' dependency tuples rather than networkx, because importing networkx costs about
0.2 s and ``conductor validate`` / ``conductor plan`` must start fast; ``task_graph``
still hands out a networkx DiGraph (imported lazily) for callers that want one.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conductor.errors import UserError
from conductor.spec.model import PRIORITY_RANK, Task, Workflow

if TYPE_CHECKING:
    import networkx as nx

# An unestimated task still takes *some* time, so that ranking by remaining path
# prefers long chains of unestimated work over short ones.
MIN_RANK_HOURS = 0.01
_EPS = 1e-9


@dataclass(frozen=True)
class Plan:
    workflow: Workflow
    selected: tuple[str, ...]
    waves: tuple[tuple[str, ...], ...]
    critical_path: tuple[str, ...]
    critical_hours: float
    effort_hours: float
    unestimated: tuple[str, ...]
    makespan_waves_hours: float
    makespan_eager_hours: float
    concurrency: int
    external_deps: dict[str, tuple[str, ...]]
    # Derived index so that wave_of is O(1) for the scheduler; not part of equality.
    wave_index: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def wave_of(self, task_id: str) -> int:
        """The 0-based wave of a selected task (KeyError if it is not selected)."""
        if self.wave_index:
            return self.wave_index[task_id]
        for k, wave in enumerate(self.waves):
            if task_id in wave:
                return k
        raise KeyError(task_id)


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


def _members(wf: Workflow) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for tid, task in wf.tasks.items():
        if task.group:
            out.setdefault(task.group, []).append(tid)
    return out


def _dep_map(wf: Workflow) -> dict[str, tuple[str, ...]]:
    """task -> deps, checked to name existing tasks."""
    deps: dict[str, tuple[str, ...]] = {}
    members = _members(wf)
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


def downstream(wf: Workflow, task_ids: Iterable[str]) -> set[str]:
    """The given tasks plus everything that depends on them, transitively."""
    kids = _children(_dep_map(wf))
    todo = [_known_task(wf, t) for t in task_ids]
    seen = set(todo)
    while todo:
        for child in kids[todo.pop()]:
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def upstream(wf: Workflow, task_ids: Iterable[str]) -> set[str]:
    """The given tasks plus everything they depend on, transitively."""
    deps = _dep_map(wf)
    todo = [_known_task(wf, t) for t in task_ids]
    seen = set(todo)
    while todo:
        for dep in deps[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
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
    chosen.update(_known_task(wf, t) for t in tasks)
    return upstream(wf, chosen) if with_deps else chosen


# ---------------------------------------------------------------- graph metrics


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


def _waves(
    order: Sequence[str], deps: Mapping[str, Sequence[str]], kids: Mapping[str, Sequence[str]]
) -> list[list[str]]:
    """Topological generations of the induced subgraph, each in file order."""
    level = _levels(order, deps, kids)
    if len(level) != len(order):
        cyc = _cycle(order, deps, level)
        raise UserError("dependency cycle: " + " -> ".join(cyc), "remove one of these edges")
    waves: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for t in order:  # file order within each wave
        waves[level[t]].append(t)
    return waves


def _longest_to_sink(
    topo: Sequence[str], kids: Mapping[str, Sequence[str]], weight: Mapping[str, float]
) -> tuple[dict[str, float], dict[str, str | None]]:
    """Longest path weight from each node to a sink, and the successor on that path."""
    best: dict[str, float] = {}
    succ: dict[str, str | None] = {}
    for t in reversed(topo):
        nxt: str | None = None
        tail = 0.0
        for k in kids[t]:
            if nxt is None or best[k] > tail:
                nxt, tail = k, best[k]
        best[t] = weight[t] + tail
        succ[t] = nxt
    return best, succ


def _critical_path(
    topo: Sequence[str], kids: Mapping[str, Sequence[str]], hours: Mapping[str, float]
) -> tuple[str, ...]:
    """Longest path by estimate; ties broken towards more tasks, then file order."""
    # Lexicographic weight (hours, then task count) folded into one float: the count term
    # is far below any estimate resolution, so it only decides between equal-hour paths.
    weight = {t: hours[t] + 1e-9 for t in topo}
    best, succ = _longest_to_sink(topo, kids, weight)
    if not best:
        return ()
    pos = {t: i for i, t in enumerate(topo)}
    start = max(topo, key=lambda t: (best[t], -pos[t]))
    path = [start]
    while (nxt := succ[path[-1]]) is not None:
        path.append(nxt)
    return tuple(path)


# ---------------------------------------------------------------- makespan


def _rank_key(
    wf: Workflow, remaining: Mapping[str, float], pos: Mapping[str, int]
) -> dict[str, tuple[int, float, int]]:
    """Dispatch order: priority, then longest remaining path, then file order."""
    return {t: (PRIORITY_RANK[wf.tasks[t].priority], -remaining[t], pos[t]) for t in remaining}


def _list_schedule(tasks: Sequence[str], hours: Mapping[str, float], slots: int) -> float:
    """Makespan of independent tasks dispatched in the given order to ``slots`` workers."""
    free = [0.0] * min(slots, max(len(tasks), 1))
    for t in tasks:
        start = heapq.heappop(free)
        heapq.heappush(free, start + hours[t])
    return max(free, default=0.0)


def _simulate_waves(
    waves: Sequence[Sequence[str]],
    hours: Mapping[str, float],
    key: Mapping[str, tuple[int, float, int]],
    c: int,
) -> float:
    return sum(_list_schedule(sorted(w, key=key.__getitem__), hours, c) for w in waves)


def _simulate_eager(
    order: Sequence[str],
    deps: Mapping[str, Sequence[str]],
    kids: Mapping[str, Sequence[str]],
    hours: Mapping[str, float],
    key: Mapping[str, tuple[int, float, int]],
    c: int,
) -> float:
    """Event simulation: a task starts when its deps are done and a slot is free."""
    pending = {t: len(deps[t]) for t in order}
    ready = [(key[t], t) for t in order if pending[t] == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []  # (finish time, task)
    now = 0.0
    while ready or running:
        while ready and len(running) < c:
            _, t = heapq.heappop(ready)
            heapq.heappush(running, (now + hours[t], t))
        now, done = heapq.heappop(running)
        finished = [done]
        # Everything finishing at the same instant frees its slot before the next dispatch.
        while running and running[0][0] <= now + _EPS:
            finished.append(heapq.heappop(running)[1])
        for f in finished:
            for k in kids[f]:
                pending[k] -= 1
                if pending[k] == 0:
                    heapq.heappush(ready, (key[k], k))
    return now


# ---------------------------------------------------------------- plan


def make_plan(
    wf: Workflow,
    *,
    groups: Sequence[str] = (),
    tasks: Sequence[str] = (),
    with_deps: bool = False,
    concurrency: int | None = None,
) -> Plan:
    """Select tasks and compute waves, critical path, effort and makespan estimates."""
    c = wf.concurrency if concurrency is None else concurrency
    if c < 1:
        raise UserError(f"concurrency must be at least 1, got {c}")
    all_deps = _dep_map(wf)
    chosen = select(wf, groups=groups, tasks=tasks, with_deps=with_deps)
    order = [t for t in wf.tasks if t in chosen]
    inner, external = all_deps, {}  # everything selected: nothing to filter (the common case)
    if len(chosen) != len(all_deps):
        inner = {t: tuple(d for d in all_deps[t] if d in chosen) for t in order}
        external = {t: x for t in order if (x := tuple(d for d in all_deps[t] if d not in chosen))}
    kids = _children(inner)
    waves = _waves(order, inner, kids)
    selected = tuple(t for w in waves for t in w)
    hours = {t: _hours(wf.tasks[t]) for t in selected}
    critical = _critical_path(selected, kids, hours)
    remaining = _remaining(selected, kids, hours)
    pos = {t: i for i, t in enumerate(order)}
    key = _rank_key(wf, remaining, pos)
    # Sum whole seconds before converting, so that estimates add up exactly (81h, not 80.999).
    effort_s = sum(wf.tasks[t].estimate_s or 0.0 for t in selected)
    return Plan(
        workflow=wf,
        selected=selected,
        waves=tuple(tuple(w) for w in waves),
        critical_path=critical,
        critical_hours=sum(wf.tasks[t].estimate_s or 0.0 for t in critical) / 3600.0,
        effort_hours=effort_s / 3600.0,
        unestimated=tuple(t for t in selected if wf.tasks[t].estimate_s is None),
        makespan_waves_hours=_simulate_waves(waves, hours, key, c),
        makespan_eager_hours=_simulate_eager(order, inner, kids, hours, key, c),
        concurrency=c,
        external_deps=external,
        wave_index={t: k for k, w in enumerate(waves) for t in w},
    )


def _remaining(
    topo: Sequence[str], kids: Mapping[str, Sequence[str]], hours: Mapping[str, float]
) -> dict[str, float]:
    weight = {t: max(hours[t], MIN_RANK_HOURS) for t in topo}
    return _longest_to_sink(topo, kids, weight)[0]


def remaining_path_hours(plan: Plan) -> dict[str, float]:
    """Longest path (by estimate, at least 0.01 h per task) from each selected task to a
    sink of the selected subgraph, the task itself included. Higher = dispatch sooner."""
    wf = plan.workflow
    chosen = set(plan.selected)
    members = _members(wf)
    inner = {
        t: [d for d in task_deps(wf, wf.tasks[t], members) if d in chosen] for t in plan.selected
    }
    hours = {t: _hours(wf.tasks[t]) for t in plan.selected}
    return _remaining(plan.selected, _children(inner), hours)


def plan_to_json(plan: Plan) -> dict[str, object]:
    """The stable ``conductor plan --json`` document."""
    wf = plan.workflow
    return {
        "workflow": wf.name,
        "concurrency": plan.concurrency,
        "waves": [list(w) for w in plan.waves],
        "critical_path": list(plan.critical_path),
        "critical_hours": _round(plan.critical_hours),
        "effort_hours": _round(plan.effort_hours),
        "makespan_hours": {
            "waves": _round(plan.makespan_waves_hours),
            "eager": _round(plan.makespan_eager_hours),
        },
        "unestimated": list(plan.unestimated),
        "external_deps": {t: list(ds) for t, ds in plan.external_deps.items()},
        "tasks": [_task_json(plan, wf.tasks[t]) for t in plan.selected],
    }


def _task_json(plan: Plan, task: Task) -> dict[str, object]:
    wf = plan.workflow
    return {
        "id": task.id,
        "title": task.title,
        "group": task.group,
        "role": task.role,
        "agent": task.agent,
        "priority": task.priority,
        "estimate_hours": None if task.estimate_s is None else _round(task.estimate_s / 3600),
        "deps": list(task_deps(wf, task)),
        "wave": plan.wave_of(task.id),
    }


def _round(hours: float) -> float:
    # Four places hide float noise (0.30000000000000004) while keeping 1-second estimates.
    return round(hours, 4)
