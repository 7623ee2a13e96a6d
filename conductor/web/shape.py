"""The shape of a run's graph: its waves, groups and edges, from the workflow it ran.

The store records tasks, not edges, so the graph comes from the workflow file through
``replan`` (the same reading `watch` does). A file changed or gone since the run still
gives a page: the tasks the store has, one lane per group, without edges, and a note
saying why. Parsing YAML on every refresh would be wasteful, so shapes are cached per
run and file modification time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conductor.errors import ConductorError
from conductor.state.records import RunRow, TaskRow

if TYPE_CHECKING:
    from conductor.spec.model import Workflow


@dataclass(frozen=True)
class Shape:
    waves: tuple[tuple[str, ...], ...]  # the run's tasks by wave (every task exactly once)
    groups: dict[str, str | None]  # task -> its group
    edges: tuple[tuple[str, str], ...]  # (from, to): dependencies written on tasks
    group_deps: dict[str, tuple[str, ...]] = field(default_factory=dict)
    budget_usd: float | None = None
    note: str | None = None  # why the workflow could not be read, if it could not
    workflow: Workflow | None = field(default=None, compare=False)  # for the ETA


def _fallback(tasks: Sequence[TaskRow], why: str) -> Shape:
    return Shape((tuple(t["task_id"] for t in tasks),) if tasks else (),
                 {t["task_id"]: t["group_id"] for t in tasks}, (),
                 note=f"drawn from the store alone: {why}")  # fmt: skip


def _edges(wf: Workflow, drawn: set[str]) -> tuple[tuple[str, str], ...]:
    expansions: dict[str, list[str]] = {}
    for tid, task in wf.tasks.items():
        if task.template:
            expansions.setdefault(task.template, []).append(tid)
    out: list[tuple[str, str]] = []
    for tid in wf.tasks:
        if tid not in drawn:
            continue
        for dep in wf.tasks[tid].depends_on:
            out += [(src, tid) for src in expansions.get(dep, [dep]) if src in drawn]
    return tuple(dict.fromkeys(out))


def read_shape(root: Path, run: RunRow, tasks: Sequence[TaskRow]) -> Shape:
    """The graph of ``run`` as its workflow file draws it now."""
    from conductor.git.workspace import Workspace
    from conductor.run.start import replan

    try:
        wf, plan, _settings = replan(Workspace(root), run, os.environ)
    except ConductorError as exc:  # gone, changed into something invalid, bad config
        return _fallback(tasks, str(exc).splitlines()[0])
    ids = [t["task_id"] for t in tasks]
    known = set(ids)
    waves = [tuple(t for t in wave if t in known) for wave in plan.waves]
    placed = {t for wave in waves for t in wave}
    extra = tuple(t for t in ids if t not in placed)  # selected then, not in the file now
    waves = [w for w in waves if w] + ([extra] if extra else [])
    groups = {t["task_id"]: t["group_id"] for t in tasks}
    gdeps = {g: grp.depends_on for g, grp in wf.groups.items() if grp.depends_on}
    note = "not in the workflow file any more: " + ", ".join(extra) if extra else None
    return Shape(tuple(waves), groups, _edges(wf, known), gdeps, wf.budget_usd, note, wf)


class Shapes:
    """Shapes per run, re-read when the workflow file changes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[int, Shape]] = {}

    def get(self, run: RunRow, tasks: Callable[[], Sequence[TaskRow]]) -> Shape:
        """The run's shape; ``tasks`` (its rows) is read only when the cache misses."""
        try:
            stamp = (self.root / run["workflow"]).stat().st_mtime_ns
        except OSError:
            stamp = -1
        with self._lock:
            hit = self._cache.get(run["id"])
        if hit is not None and hit[0] == stamp:
            return hit[1]
        shape = read_shape(self.root, run, tasks())
        with self._lock:
            if len(self._cache) > 64:  # a long-lived server over many runs
                self._cache.clear()
            self._cache[run["id"]] = (stamp, shape)
        return shape
