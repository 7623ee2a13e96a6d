"""What the agents spent, summed per task, per group and per run, in one shape.

Every attempt counts, failed ones too: a retry's cost is real money. `status --json`,
`export`, the execution log and the live view all sum through here, so their figures
agree. Costs are shown with ``fmt_usd`` (sub-cent costs keep their digits).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from conductor.report.rundata import fmt_usd
from conductor.state.endings import count_states
from conductor.state.records import AttemptRow, Spend, TaskRow


def spend_doc(s: Spend) -> dict[str, Any]:
    """The spend fields of a task, group or run object (null where no agent said)."""
    # sums of float costs carry float noise (0.1 + 0.2): a billionth of a dollar is plenty
    cost = round(s.cost_usd, 9) if s.cost_usd is not None else None
    return {"cost_usd": cost, "tokens_in": s.tokens_in, "tokens_out": s.tokens_out,
            "tokens_cache": s.tokens_cache, "turns": s.turns, "models": list(s.models)}  # fmt: skip


def per_task(attempts: Iterable[AttemptRow]) -> dict[str, Spend]:
    """task -> its attempts' spend summed (what ``Store.spend`` answers, from loaded rows)."""
    out: dict[str, Spend] = {}
    for a in sorted(attempts, key=lambda a: a["n"]):  # models in attempt order
        one = Spend.of(a)
        if one.reported:
            out[a["task_id"]] = out.get(a["task_id"], Spend()) + one
    return out


def total(spend: Mapping[str, Spend]) -> Spend:
    return sum(spend.values(), Spend())


def per_group(tasks: Iterable[TaskRow], spend: Mapping[str, Spend]) -> dict[str, Spend]:
    """group -> its tasks' spend summed, groups in the order of their first task."""
    out: dict[str, Spend] = {}
    for t in tasks:
        gid, s = t["group_id"], spend.get(t["task_id"])
        if gid is None:
            continue
        if gid not in out:  # every group is listed, spent or not
            out[gid] = s or Spend()
        elif s is not None:
            out[gid] += s
    return out


def groups_doc(tasks: list[TaskRow], spend: Mapping[str, Spend]) -> list[dict[str, Any]]:
    """The `groups` list of `status --json` and `export`: each group's counts and sums."""
    sums = per_group(tasks, spend)
    return [
        {
            "id": gid,
            "tasks": sum(1 for t in tasks if t["group_id"] == gid),
            "counts": count_states(t["state"] for t in tasks if t["group_id"] == gid),
            **spend_doc(s),
        }
        for gid, s in sums.items()
    ]


def fmt_tokens(n: int) -> str:
    """Short token counts for narrow places (the live view): 950, 12.3k, 4.5M."""
    if n < 1000:
        return str(n)
    return f"{n / 1000:.1f}k" if n < 999_950 else f"{n / 1_000_000:.1f}M"


def tokens_text(s: Spend) -> str:
    """`12,000 in (1,000 cached) · 3,400 out`; empty when no tokens were reported."""
    if s.tokens_in is None and s.tokens_out is None:
        return ""
    cached = f" ({s.tokens_cache:,} cached)" if s.tokens_cache else ""
    return f"{s.tokens_in or 0:,} in{cached} · {s.tokens_out or 0:,} out"


def spend_text(s: Spend) -> str:
    """One line for the log's totals: cost · tokens · turns · models ('' if none)."""
    parts = [fmt_usd(s.cost_usd) if s.cost_usd is not None else "", tokens_text(s)]
    parts.append(f"{s.turns:,} turn{'s' * (s.turns != 1)}" if s.turns is not None else "")
    parts.append(", ".join(s.models))
    return " · ".join(p for p in parts if p)
