"""A group's gate as a row of its own: its state, how long it took, its output when it
failed — for `status`, the live view, the execution log, the gantt and export.

Gates leave only events (`gate_started`, `gate_passed`, `gate_failed` with the output);
``gate_rows`` reads them back. The run's `run_started` event names the gates it has
(``gates``), so one that never ran (its group did not succeed, the run stopped first)
still shows, as `not run` once the run is over and `pending` while it goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from conductor.state.records import EventRow

if TYPE_CHECKING:
    from conductor.spec.model import Workflow

GATE_KINDS = ("run_started", "gate_started", "gate_passed", "gate_failed")


@dataclass
class GateRow:
    group: str
    state: str  # pending | running | passed | failed | not run
    started: float | None = None
    finished: float | None = None
    output: str = ""  # what its checks said, when it failed

    @property
    def duration_s(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return max(0.0, self.finished - self.started)

    def doc(self) -> dict[str, Any]:
        return {**asdict(self), "duration_s": self.duration_s}

    def apply(self, kind: str, data: Mapping[str, Any], ts: float) -> None:
        """One of its events: started, passed or failed."""
        if kind == "gate_started":  # a resumed run may run it again: the last counts
            self.state, self.started, self.finished, self.output = "running", ts, None, ""
        elif kind in ("gate_passed", "gate_failed"):
            self.state = "passed" if kind == "gate_passed" else "failed"
            self.finished, self.output = ts, str(data.get("output") or "")

    def end(self) -> None:
        """The run is over: a gate that never started did `not run`."""
        if self.state in ("pending", "running"):
            self.state = "not run" if self.state == "pending" else "interrupted"


def gate_rows(
    events: Iterable[EventRow], declared: Sequence[str] = (), *, over: bool = False
) -> list[GateRow]:
    """The gates of a run from its events, in the order declared (then as they ran);
    ``over``: the run has ended, so a gate that never started did `not run`."""
    rows: dict[str, GateRow] = {g: GateRow(g, "pending") for g in declared}
    for e in events:
        d = e["data"] or {}
        if e["kind"] == "run_started":
            for g in d.get("gates") or ():
                rows.setdefault(str(g), GateRow(str(g), "pending"))
            continue
        group = str(d.get("group") or "")
        if not group or not e["kind"].startswith("gate_"):
            continue
        rows.setdefault(group, GateRow(group, "pending")).apply(e["kind"], d, e["ts"])
    for row in rows.values():
        if over:
            row.end()
    return list(rows.values())


def declared_gates(wf: Workflow, selected: Iterable[str]) -> list[str]:
    """The groups with a gate that some selected task belongs to, in file order."""
    groups = {wf.tasks[t].group for t in selected if t in wf.tasks}
    return [g for g, group in wf.groups.items() if group.validate and g in groups]
