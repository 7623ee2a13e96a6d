"""Waves, critical path and makespan estimates over the selected, acyclic task graph.

Hours come from each task's ``estimate``. An unestimated task counts as zero on the
critical path and in the makespans, but as ``MIN_RANK_HOURS`` when ranking, so that long
chains of unestimated work still go first. The makespan is simulated for both strategies:
wave by wave, and eagerly (a task starts once its deps are done and a slot is free), each
dispatching by priority, then longest remaining path, then file order.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from conductor.errors import UserError
from conductor.plan.graph import _cycle, _levels
from conductor.spec.model import PRIORITY_RANK, Workflow

# An unestimated task still takes *some* time, so that ranking by remaining path
# prefers long chains of unestimated work over short ones.
MIN_RANK_HOURS = 0.01
_EPS = 1e-9


# ---------------------------------------------------------------- waves and critical path


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


def _remaining(
    topo: Sequence[str], kids: Mapping[str, Sequence[str]], hours: Mapping[str, float]
) -> dict[str, float]:
    weight = {t: max(hours[t], MIN_RANK_HOURS) for t in topo}
    return _longest_to_sink(topo, kids, weight)[0]
