"""Pools as every view shows them: slots used and free, spend against quota, pause state.

The runner keeps a snapshot of its pools in the run's ``options`` (``pools``: each pool's
slots, quota, executor and whether it is paused, rewritten when that changes; see
run/quotas.py), so `status`, `status --json`, the execution log and `runs` read pools from
the store alone, like everything else they show. Slots used are the run's tasks in flight
(by their current attempt's pool); spend is summed over every attempt of each pool.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from conductor.report.mdtext import row
from conductor.report.rundata import RunData, fmt_usd
from conductor.state.records import AttemptRow, RunRow, TaskRow
from conductor.state.states import TASK_ACTIVE

if TYPE_CHECKING:
    from conductor.spec.model import Workflow

# spec.model.DEFAULT_POOL (a test keeps them equal): importing the model for one name
# would cost `status` 20 ms, a sixth of its start-up
DEFAULT_POOL = "local"


def snapshot(wf: Workflow, concurrency: int, paused: Mapping[str, str],
             held: Mapping[str, float]) -> dict[str, dict[str, Any]]:  # fmt: skip
    """What the runner records of its pools (``options.pools``)."""
    pools = wf.pools or {DEFAULT_POOL: wf.pool(DEFAULT_POOL)}
    return {
        name: {
            "slots": p.slots,
            "cap": p.cap(concurrency),
            "usd": p.usd,
            "executor": p.executor,
            "skills": list(p.skills),
            "paused": paused.get(name) or (_held_text(held[name]) if name in held else None),
            "until": held.get(name),
        }
        for name, p in pools.items()
    }


def _held_text(until: float) -> str:
    return "usage limit until " + time.strftime("%H:%M:%S", time.localtime(until))


def recorded(run: RunRow) -> dict[str, dict[str, Any]]:
    """The run's pools snapshot; one `local` pool for a run recorded before pools."""
    try:
        opts = json.loads(run["options"] or "{}")
    except ValueError:
        opts = {}
    pools = opts.get("pools")
    if isinstance(pools, dict) and pools:
        return pools
    cap = int(opts.get("concurrency") or 0) or None
    return {DEFAULT_POOL: {"slots": None, "cap": cap, "usd": None, "executor": "local",
                           "skills": [], "paused": None, "until": None}}  # fmt: skip


def pools_doc(run: RunRow, tasks: Sequence[TaskRow],
              attempts: Sequence[AttemptRow]) -> list[dict[str, Any]]:  # fmt: skip
    """The `pools` list of `status --json`: one object per pool."""
    latest: dict[str, AttemptRow] = {}
    spent: dict[str, float] = {}
    for a in attempts:
        if a["task_id"] not in latest or a["n"] > latest[a["task_id"]]["n"]:
            latest[a["task_id"]] = a
        if a["pool"] and a["cost_usd"] is not None:
            spent[a["pool"]] = spent.get(a["pool"], 0.0) + a["cost_usd"]
    used: dict[str, int] = {}
    for t in tasks:
        current = latest.get(t["task_id"])
        if t["state"] in TASK_ACTIVE and current is not None:
            pool = current["pool"] or DEFAULT_POOL
            used[pool] = used.get(pool, 0) + 1
    out = []
    for name, p in recorded(run).items():
        cap, n = p.get("cap"), used.get(name, 0)
        out.append({
            "name": name, "executor": p.get("executor") or "local", "slots": cap,
            "used": n, "free": None if cap is None else max(0, cap - n),
            "usd": p.get("usd"), "spent_usd": round(spent.get(name, 0.0), 6),
            "paused": bool(p.get("paused")), "reason": p.get("paused"), "until": p.get("until"),
            "skills": p.get("skills") or [],
        })  # fmt: skip
    return out


def pools_text(pools: Sequence[Mapping[str, Any]]) -> str:
    """``local 1/4 · seats 2/3 $1.20 of $5 · gpu 0/1 paused: quota…`` (one line)."""
    parts = []
    for p in pools:
        text = f"{p['name']} {p['used']}/{p['slots'] if p['slots'] is not None else '–'}"
        if p.get("usd") is not None:
            text += f" {fmt_usd(p['spent_usd'])} of {fmt_usd(p['usd'])}"
        elif p.get("spent_usd"):
            text += f" {fmt_usd(p['spent_usd'])}"
        if p.get("paused"):
            text += f" PAUSED ({p['reason']})"
        parts.append(text)
    return " · ".join(parts)


def pools_section(d: RunData, wf: Workflow) -> str:
    """The log's `Pools` table; nothing for a run with only the default pool, unpaused."""
    pools = pools_doc(d.run, d.tasks, d.attempts)
    plain = len(pools) == 1 and pools[0]["name"] == DEFAULT_POOL and not pools[0]["paused"]
    if plain:
        return ""
    tasks: dict[str, int] = {}
    for t in wf.tasks.values():
        tasks[t.pool] = tasks.get(t.pool, 0) + 1
    out = ["## Pools", "",
           row(("Pool", "Executor", "Slots", "Tasks", "Spent", "Quota", "State")),
           "|---|---|---|---|---|---|---|"]  # fmt: skip
    for p in pools:
        quota = fmt_usd(p["usd"]) if p["usd"] is not None else "–"
        state = f"⏸️ paused: {p['reason']}" if p["paused"] else "open"
        out.append(row((f"`{p['name']}`", p["executor"], str(p["slots"] or "–"),
                        str(tasks.get(p["name"], 0)), fmt_usd(p["spent_usd"]), quota,
                        state)))  # fmt: skip
    return "\n".join(out) + "\n"
