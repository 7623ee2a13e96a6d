"""Pools in the live view and in `status`: slots used of each, spend against its quota,
whether it is paused — one line, shown once a run has more than the default pool (or the
default pool is paused), and the deadlock that ended a run, in red.

The live view learns it from events, like the rest of its model: the workflow gives each
task's pool and each pool's slots and quota; `task_usage` adds spend; `pool_paused` /
`pool_resumed` and `deadlock` say the rest. `status` renders the `pools` list of its
document (report/poolreport.py) with the same line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.text import Text

from conductor.console.palette import Palette
from conductor.console.safe import safe
from conductor.report.poolreport import pools_text
from conductor.spec.model import DEFAULT_POOL
from conductor.state.records import EventRow
from conductor.state.states import TASK_ACTIVE

if TYPE_CHECKING:
    from conductor.console.runmodel import TaskModel
    from conductor.spec.model import Workflow


class PoolBoard:
    def __init__(self, wf: Workflow, selected: Sequence[str]) -> None:
        self.pools = dict(wf.pools) or {DEFAULT_POOL: wf.pool(DEFAULT_POOL)}
        self.pool_of = {t: wf.tasks[t].pool for t in selected if t in wf.tasks}
        self.spent: dict[str, float] = {}
        self.paused: dict[str, str] = {}  # pool -> why
        self.deadlock = ""

    def apply(self, row: EventRow) -> None:
        kind, d = row["kind"], row["data"] or {}
        pool = str(d.get("pool") or "")
        if kind == "pool_paused":
            self.paused[pool] = safe(str(d.get("message") or "paused"))
        elif kind == "pool_resumed":
            self.paused.pop(pool, None)
        elif kind == "deadlock":
            self.deadlock = safe(str(d.get("message") or "deadlock"))
        elif kind == "task_usage" and isinstance(d.get("cost_usd"), (int, float)):
            name = self.pool_of.get(row["task_id"] or "", DEFAULT_POOL)
            self.spent[name] = self.spent.get(name, 0.0) + float(d["cost_usd"])

    def rows(self, tasks: Mapping[str, TaskModel], concurrency: int) -> list[dict[str, Any]]:
        """The pools in `status --json`'s shape."""
        used: dict[str, int] = {}
        for t in tasks.values():
            if t.state in TASK_ACTIVE:
                name = self.pool_of.get(t.id, DEFAULT_POOL)
                used[name] = used.get(name, 0) + 1
        return [{"name": name, "used": used.get(name, 0), "slots": p.cap(concurrency),
                 "usd": p.usd, "spent_usd": self.spent.get(name, 0.0),
                 "paused": name in self.paused, "reason": self.paused.get(name, "")}
                for name, p in self.pools.items()]  # fmt: skip


def pool_lines(pools: Sequence[Mapping[str, Any]], palette: Palette,
               deadlock: str = "") -> list[Text]:  # fmt: skip
    """``pools: local 1/4 · seats 2/3 $1.20 of $5.00 · gpu 0/1 PAUSED (…)``; nothing
    for a run with only the default pool, unpaused."""
    out: list[Text] = []
    plain = len(pools) == 1 and pools[0]["name"] == DEFAULT_POOL and not pools[0]["paused"]
    if pools and not plain:
        paused = any(p["paused"] for p in pools)
        out.append(Text("pools: " + pools_text([_shown(p) for p in pools]),
                        style=palette.style("yellow") if paused else ""))  # fmt: skip
    if deadlock:
        out.append(Text(f"deadlock: {deadlock}", style=palette.style("bold red")))
    return out


def _shown(p: Mapping[str, Any]) -> Mapping[str, Any]:
    """A pause's reason without the pool's own name repeated in front of it."""
    reason = str(p.get("reason") or "").removeprefix(f"pool {p['name']} paused")
    return {**p, "reason": reason.lstrip(": ")}
