"""The run as the execution log reads it: one ``load`` from the store, then plain data.

Four queries (the run, its tasks, its attempts and its warning and error events) fill a
``RunData`` that every section of the log reads, so nothing queries while rendering. The
state icons and ``fmt_duration`` live here too: the sections, the log's summary and the
CLI all use them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from conductor.report.gaterows import GATE_KINDS, GateRow, gate_rows
from conductor.state.records import AttemptRow, EventRow, RunRow, TaskRow
from conductor.state.store import Store

# In the order states are counted in: most telling first (unknown states follow).
ICON = {
    "succeeded": "✅",
    "failed": "❌",
    "blocked": "⛔",
    "cancelled": "🚫",
    "interrupted": "⏸️",
    "running": "🔄",
    "validating": "🔄",
    "merging": "🔄",
    "awaiting_approval": "✋",
    "approved": "👍",
    "rejected": "👎",
    "retrying": "🔁",
    "ready": "⏳",
    "pending": "⏳",
    "skipped": "⏭️",
    "up to date": "✅",  # skipped: an earlier run did its work
    "passed": "✅",  # a gate
    "not run": "⏭️",  # a gate whose group did not succeed
}
STATE_ORDER = tuple(ICON)


# ------------------------------------------------------------------ small formatting


def fmt_usd(amount: float) -> str:
    """Dollars with cents, or with enough digits that a sub-cent cost is not $0.00."""
    if amount == 0 or abs(amount) >= 0.01:
        return f"${amount:.2f}"
    return f"${amount:.2g}" if abs(amount) >= 0.0001 else f"${amount:.1e}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


# ------------------------------------------------------------------ the data


@dataclass
class RunData:
    """Everything the log shows, read once from the store."""

    run: RunRow
    tasks: list[TaskRow]
    attempts: list[AttemptRow]
    alerts: list[EventRow]
    now: float
    head: str | None
    by_task: dict[str, list[AttemptRow]] = field(default_factory=dict)
    gates: list[GateRow] = field(default_factory=list)  # each group's gate, as it went

    def __post_init__(self) -> None:
        for a in sorted(self.attempts, key=lambda r: r["n"]):
            self.by_task.setdefault(a["task_id"], []).append(a)

    @property
    def live(self) -> bool:
        return bool(self.run["state"] == "running")

    def counts(self) -> dict[str, int]:
        raw: dict[str, int] = {}
        for t in self.tasks:
            raw[t["state"]] = raw.get(t["state"], 0) + 1
        known = {s: raw[s] for s in STATE_ORDER if s in raw}
        return {**known, **{s: n for s, n in sorted(raw.items()) if s not in known}}

    def task_span(self, task_id: str) -> float | None:
        """Wall time from the first attempt's start to the last one's end (or now)."""
        atts = self.by_task.get(task_id)
        if not atts:
            return None
        end = max(float(a["finished"] or self.now) for a in atts)
        return max(0.0, end - min(float(a["started"]) for a in atts))


def load(
    store: Store, run_id: str, integration_head: str | None = None, now: float | None = None
) -> RunData:
    run = store.run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id}")
    tasks = store.tasks(run_id)
    head = integration_head or _last_merge(tasks)
    over = run["state"] != "running"
    return RunData(
        run,
        tasks,
        store.attempts(run_id),
        store.events(run_id, levels=("warning", "error")),
        time.time() if now is None else now,
        head,
        gates=gate_rows(store.events(run_id, kinds=GATE_KINDS), over=over),
    )


def _last_merge(tasks: list[TaskRow]) -> str | None:
    """The integration head as far as this run knows: its newest merge."""
    merged = [t for t in tasks if t["merge_commit"]]
    if not merged:
        return None
    return str(max(merged, key=lambda t: t["finished"] or 0)["merge_commit"])
