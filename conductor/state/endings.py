"""How a run ended, told the same way everywhere: its exit code, its task counts and the
merge conflicts its retries settled.

`run`, `resume` and `watch` exit with the same code for the same ending; `run_finished`,
`status`, the console and the execution log count the same states apart (a task skipped
as up to date is not one that succeeded in this run). Plain functions over states and
event rows, so the engine, the report and the console all use them without a store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conductor.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from conductor.state.records import EventRow

if TYPE_CHECKING:
    from conductor.state.store import Store

# The order counts are told in: what happened in this run first, then what did not run.
COUNT_ORDER = ("succeeded", "skipped", "failed", "blocked", "cancelled", "interrupted")
# how a state is named in counts, where its name alone would not do (none today: skipped
# covers up to date, `when:` false and trigger rules alike; each task's reason says which)
LABELS: dict[str, str] = {}


def exit_code(run_state: str) -> int:
    """0 succeeded, 130 interrupted (resumable), 1 any other ending (failed, cancelled)."""
    return {"succeeded": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(run_state, EXIT_FAILED)


def count_states(states: Iterable[str]) -> dict[str, int]:
    """{state: how many}, in COUNT_ORDER, other states after them by name."""
    raw: dict[str, int] = {}
    for s in states:
        raw[s] = raw.get(s, 0) + 1
    return _ordered(raw)


def counts_text(counts: Mapping[str, int], sep: str = ", ") -> str:
    """``3 succeeded, 1 skipped, 1 failed``: every state named apart."""
    return sep.join(f"{n} {LABELS.get(s, s)}" for s, n in _ordered(counts).items())


def _ordered(raw: Mapping[str, int]) -> dict[str, int]:
    known = {s: raw[s] for s in COUNT_ORDER if raw.get(s)}
    return {**known, **{s: n for s, n in sorted(raw.items()) if s not in known and n}}


@dataclass(frozen=True)
class Settled:
    """A task whose merge conflicted and whose retry on the new head then succeeded."""

    task: str
    over: str | None  # the task whose merge it conflicted with, when git could say
    paths: tuple[str, ...]

    def text(self) -> str:
        on = f"on top of {self.over}" if self.over else "on the new integration head"
        where = ", ".join(self.paths) or "(unknown paths)"
        return f"{self.task} was redone {on} after a merge conflict in {where}"

    def doc(self) -> dict[str, Any]:
        return {"task": self.task, "over": self.over, "paths": list(self.paths)}


def settled_conflicts(events: Iterable[EventRow], states: Mapping[str, str]) -> list[Settled]:
    """One entry per task that ended succeeded after a merge conflict, from its last
    `conflict` event (the one its successful retry answered), in the order they came."""
    last: dict[str, EventRow] = {}
    for e in events:
        if e["kind"] == "conflict" and e["task_id"]:
            last.pop(e["task_id"], None)  # re-insert: order of the last conflict
            last[e["task_id"]] = e
    out = []
    for task, e in last.items():
        if states.get(task) == "succeeded":
            d = e["data"] or {}
            over = d.get("over")
            paths = tuple(str(p) for p in d.get("paths") or ())
            out.append(Settled(task, str(over) if over else None, paths))
    return out


def settled_from_docs(docs: Iterable[Mapping[str, Any]]) -> list[Settled]:
    """``Settled`` again from the dicts `run_finished` carries (``Settled.doc``)."""
    return [Settled(str(d.get("task")), d.get("over") or None,
                    tuple(str(p) for p in d.get("paths") or ())) for d in docs]  # fmt: skip


def run_ending(store: Store, run_id: str) -> tuple[dict[str, int], list[Settled]]:
    """What `run_finished` says: the tasks' states as the store has them, counted, and the
    conflicts retries settled.

    Not the scheduler's states: it holds a skipped (up-to-date) task as "succeeded" so its
    dependents may start, and an interrupted one as "cancelled"; the store keeps them apart.
    """
    states = {t["task_id"]: t["state"] for t in store.tasks(run_id)}
    events = store.events(run_id, levels=("warning",))
    return count_states(states.values()), settled_conflicts(events, states)
