"""Which ready task goes first: a scheduling policy, chosen with `policy:`.

A policy only orders: the scheduler (run/scheduler.py) then walks that order and starts
what fits (slots, pools, quotas, scopes). Built in:

* ``default``: higher ``priority`` first, then the task with the longest remaining path
  to the end of the graph (it holds everything behind it up), then file order;
* ``fifo``: in the order tasks became ready (a retried task queues again at the back),
  then file order — no task overtakes one that has waited longer;
* ``cost-aware``: the cheapest estimated task first, ties going to the task whose pool
  has the most of its quota left; then as ``default``. A task's estimate is what its
  agent profile spent per attempt so far in this run, else the run's average per attempt;
  before anything has reported a cost, every estimate is equal.

A config file may name a class of one's own, ``policy = "mymodule:MyPolicy"``: it is
imported (the current directory and the repository root are on the path), constructed
without arguments and must have ``order(ready, view) -> list[str]``. One that cannot be
loaded stops the run before anything starts (exit 2).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from conductor.errors import Diagnostic, UserError
from conductor.spec.model import DEFAULT_POLICY, POLICIES, PRIORITY_RANK, Pool, Workflow


class SchedulerView(Protocol):
    """What a policy may read of the run: the model and the scheduler's bookkeeping."""

    @property
    def workflow(self) -> Workflow: ...

    def path_hours(self, task_id: str) -> float:
        """Estimated hours from the task to the end of the graph, the task included."""
        ...

    def seq(self, task_id: str) -> int:
        """The task's position in the file (its matrix expansions in order)."""
        ...

    def ready_since(self, task_id: str) -> int:
        """A counter value, smaller for a task that became ready earlier."""
        ...

    def pool_of(self, task_id: str) -> Pool: ...

    def quota_left(self, pool: str) -> float | None:
        """The fraction (0..1) of the pool's `usd` quota not yet spent; None: no quota."""
        ...

    def estimated_cost(self, task_id: str) -> float | None:
        """USD the task is expected to cost, from what this run's agents reported."""
        ...


class Policy(Protocol):
    def order(self, ready: Sequence[str], view: SchedulerView) -> list[str]:
        """``ready`` (tasks that may start now) best first."""
        ...


class DefaultPolicy:
    """Priority, then the longest remaining path, then file order."""

    def order(self, ready: Sequence[str], view: SchedulerView) -> list[str]:
        return sorted(ready, key=lambda t: default_key(t, view))


def default_key(task_id: str, view: SchedulerView) -> tuple[int, float, int]:
    task = view.workflow.tasks[task_id]
    return (PRIORITY_RANK[task.priority], -view.path_hours(task_id), view.seq(task_id))


class FifoPolicy:
    """First ready, first started."""

    def order(self, ready: Sequence[str], view: SchedulerView) -> list[str]:
        return sorted(ready, key=lambda t: (view.ready_since(t), view.seq(t)))


class CostAwarePolicy:
    """Cheapest estimate first, then the pool with the most quota left, then default."""

    def order(self, ready: Sequence[str], view: SchedulerView) -> list[str]:
        def key(t: str) -> tuple[float, float, tuple[int, float, int]]:
            left = view.quota_left(view.pool_of(t).name)
            return (view.estimated_cost(t) or 0.0, -(1.0 if left is None else left),
                    default_key(t, view))  # fmt: skip

        return sorted(ready, key=key)


BUILT_IN: dict[str, type[DefaultPolicy | FifoPolicy | CostAwarePolicy]] = {
    "default": DefaultPolicy,
    "fifo": FifoPolicy,
    "cost-aware": CostAwarePolicy,
}
assert tuple(BUILT_IN) == POLICIES  # spec/model.py names them for the schema and config


def load_policy(name: str | None, root: Path | None = None) -> Policy:
    """The policy called ``name`` (None: the default); ``module:Class`` is imported with
    ``root`` (the repository) on the path. UserError, exit 2, when that fails."""
    name = name or DEFAULT_POLICY
    if name in BUILT_IN:
        return BUILT_IN[name]()
    module_name, sep, attr = name.partition(":")
    hint = "name a built-in policy (default, fifo, cost-aware) or `module:Class`"
    if not sep or not module_name or not attr:
        raise UserError(f"policy `{name}` is neither built in nor `module:Class`", hint=hint)
    for where in (str(root) if root is not None else None, "."):
        if where is not None and where not in sys.path:
            sys.path.append(where)
    try:
        obj: object = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        policy = obj() if isinstance(obj, type) else obj
    except Exception as exc:  # whatever the user's module raises: one clear message
        raise UserError(f"policy `{name}` cannot be loaded: {type(exc).__name__}: {exc}",
                        hint=hint) from None  # fmt: skip
    if not callable(getattr(policy, "order", None)):
        raise UserError(f"policy `{name}` has no `order(ready, view)` method", hint=hint)
    return policy  # type: ignore[return-value]


def policy_problems(wf: Workflow, root: Path | None) -> list[Diagnostic]:
    """Preflight: the configured policy loads (a user's class is imported once here)."""
    try:
        load_policy(wf.policy, root)
    except UserError as exc:
        return [Diagnostic(str(exc), str(wf.path), hint=exc.hint)]
    return []
