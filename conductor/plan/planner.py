"""A plan for a run: the selected tasks, their waves, critical path and makespan estimates.

Pure: no git, no processes, no clock. ``make_plan`` computes everything once from the
graph (``graph``: dependencies, selection) and the estimates (``estimates``) into one
immutable Plan that the scheduler, the views and ``conductor plan --json`` share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conductor.errors import UserError
from conductor.plan.estimates import (
    _critical_path,
    _rank_key,
    _remaining,
    _simulate_eager,
    _simulate_waves,
    _waves,
)
from conductor.plan.graph import _children, _dep_map, _hours, group_members, select, task_deps
from conductor.spec.model import Pool, Task, Workflow


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


def remaining_path_hours(plan: Plan) -> dict[str, float]:
    """Longest path (by estimate, at least 0.01 h per task) from each selected task to a
    sink of the selected subgraph, the task itself included. Higher = dispatch sooner."""
    wf = plan.workflow
    chosen = set(plan.selected)
    members = group_members(wf)
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
        "pools": pools_json(plan),
        "tasks": [_task_json(plan, wf.tasks[t]) for t in plan.selected],
    }


def pools_json(plan: Plan) -> list[dict[str, Any]]:
    """Each pool the selected tasks use (and every declared one): slots under the plan's
    concurrency, quota, skills, executor, and the selected tasks and effort it takes."""
    wf = plan.workflow
    used: dict[str, list[str]] = {}
    for t in plan.selected:
        used.setdefault(wf.tasks[t].pool, []).append(t)
    names = dict.fromkeys([*wf.pools, *used])
    return [_pool_json(plan, wf.pool(name), used.get(name, [])) for name in names]


def _pool_json(plan: Plan, pool: Pool, tasks: list[str]) -> dict[str, Any]:
    effort = sum(plan.workflow.tasks[t].estimate_s or 0.0 for t in tasks) / 3600.0
    return {"name": pool.name, "slots": pool.cap(plan.concurrency), "usd": pool.usd,
            "skills": list(pool.skills), "executor": pool.executor,
            "resources": pool.resources, "labels": pool.labels, "tasks": len(tasks),
            "effort_hours": _round(effort)}  # fmt: skip


def _task_json(plan: Plan, task: Task) -> dict[str, object]:
    wf = plan.workflow
    return {
        "id": task.id,
        "title": task.title,
        "group": task.group,
        "role": task.role,
        "agent": task.agent,
        "pool": task.pool,
        "priority": task.priority,
        "estimate_hours": None if task.estimate_s is None else _round(task.estimate_s / 3600),
        "deps": list(task_deps(wf, task)),
        "wave": plan.wave_of(task.id),
        **({"template": task.template, "matrix": task.matrix} if task.template else {}),
    }


def _round(hours: float) -> float:
    # Four places hide float noise (0.30000000000000004) while keeping 1-second estimates.
    return round(hours, 4)
