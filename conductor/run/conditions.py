"""Deciding, while a run goes, which waiting tasks will run: trigger rules and `when:`.

The runner asks before each dispatch (``Conditions.settle``). The scheduler applies the
trigger rules (``Scheduler.settle``: skipped or blocked, see triggers.py); a task whose
rule says it runs has its `when:` conditions evaluated once, as soon as it is ready
(its dependencies settled, before it waits for a slot). A false one skips it, with the
condition as the reason in the store, the events (so the live view and the log) and
`status`. Conditions are parsed by spec/expr.py and evaluated over its tree: the text is
never executed. Contexts: ``tasks.<id>.state`` and ``tasks.<id>.outputs.<key>`` (as a
starting task sees them, run/outputs.py), ``matrix.<key>`` and ``env.<NAME>`` (conductor's
environment with the task's `env` on top); a missing output or variable is ''.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from conductor.run.outcome import Outcome
from conductor.run.outputs import Produced, produced
from conductor.run.uptodate import was_up_to_date
from conductor.spec.expr import Expr, ExprError, Value, parse

if TYPE_CHECKING:
    from conductor.run.context import RunContext
    from conductor.run.scheduler import Scheduler
    from conductor.spec.model import Task
    from conductor.spec.template import Ref
    from conductor.state.store import Store

SKIPPED_BY = "when false: "  # how the reason of a task its condition skipped begins


class Conditions:
    def __init__(self, ctx: RunContext, sched: Scheduler) -> None:
        self.ctx, self.sched = ctx, sched
        self.checked: set[str] = set()  # tasks whose conditions were evaluated in this runner
        self._parsed: dict[str, Expr] = {}

    def settle(self, fail: Callable[[Outcome], None]) -> None:
        """Skip and block what trigger rules and conditions decide, until nothing more is
        decided; a condition that cannot be evaluated fails its task through ``fail``."""
        progress = True
        while progress:
            decided = self.sched.settle()
            self._record(decided)
            progress = bool(decided)
            for t in self._ready_to_check():
                self.checked.add(t)
                progress = True
                try:
                    false = self._first_false(self.ctx.wf.tasks[t])
                except ExprError as exc:  # a hand-built workflow; `validate` refuses it
                    fail(Outcome(t, 0, False, f"when: {exc}", retriable=False))
                    continue
                if false is not None:
                    self._skip(t, false)

    def _ready_to_check(self) -> list[str]:
        """Pending tasks with a `when:` whose trigger rule now runs them, in file order:
        the scheduler lists those that became runnable (no look at every task)."""
        sched = self.sched
        return [t for t in sched.take_when_due()
                if t not in self.checked and sched.state[t] == "pending"
                and sched.verdict(t) == "run"]  # fmt: skip

    def _first_false(self, task: Task) -> str | None:
        """The text of the first of the task's conditions that does not hold, or None."""
        value = _Lookup(self.ctx, task)
        for text in task.when:
            expr = self._parsed.get(text)
            if expr is None:
                expr = self._parsed[text] = parse(text)
            if not expr.evaluate(value):
                return text
        return None

    def _skip(self, task_id: str, condition: str) -> None:
        reason = SKIPPED_BY + condition
        self.sched.set(task_id, "skipped")
        self.ctx.store.update_task(self.ctx.run_id, task_id, state="skipped", error=reason,
                                   finished=time.time())  # fmt: skip
        self.ctx.emit("task_skipped", task_id, reason=reason, condition=condition)

    def _record(self, decided: list[tuple[str, str, str]]) -> None:
        ctx = self.ctx
        for t, state, why in decided:
            if state == "skipped":
                ctx.store.update_task(ctx.run_id, t, state=state, error=why, finished=time.time())
                ctx.emit("task_skipped", t, reason=why, trigger=ctx.wf.tasks[t].trigger)
            else:
                ctx.store.update_task(ctx.run_id, t, state=state, error=f"blocked by {why}")
                ctx.emit("task_blocked", t, cause=why)


class _Lookup:
    """The value of each reference a task's condition names."""

    def __init__(self, ctx: RunContext, task: Task) -> None:
        self.ctx, self.task = ctx, task
        self.seen: dict[str, Produced] = {}
        self.env = {**ctx.base_env, **{k: ctx.secrets.expand(v) for k, v in task.env.items()}}

    def __call__(self, ref: Ref) -> Value:
        # what is missing is '', as GitHub's `needs.<id>.outputs.<key>` of an unset output
        # (so `tasks.T.outputs.api != ''` asks whether T wrote one)
        if ref.root == "matrix":
            return self.task.matrix.get(ref.name, "")
        if ref.root == "env":
            return self.env.get(ref.name, "")
        seen = self.seen.get(ref.name)
        if seen is None:
            seen = self.seen[ref.name] = produced(self.ctx, ref.name)
        return seen.state if ref.key is None else seen.outputs.get(ref.key, "")


def restore_skips(store: Store, run_id: str, sched: Scheduler) -> None:
    """On resume: a task skipped by its condition or trigger rule is skipped, not done
    (the scheduler starts skipped tasks as succeeded: up to date, their work is there)."""
    for row in store.tasks(run_id):
        if row["state"] == "skipped" and not was_up_to_date(row) and row["task_id"] in sched.state:
            sched.set(row["task_id"], "skipped")
