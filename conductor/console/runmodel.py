"""The run as its events tell it: the model behind the live view.

It starts from the selected tasks of the workflow and changes only through event rows
(``RunModel.apply``); from them it derives counts, the current wave, the active groups
and an ETA. Plain data, no rich: ``LiveView`` updates and reads it under its own lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conductor.console.poolboard import PoolBoard
from conductor.console.safe import safe
from conductor.report.gaterows import GateRow, declared_gates
from conductor.state.endings import settled_from_docs
from conductor.state.records import EventRow, Spend
from conductor.state.states import TASK_IN_PROGRESS, TASK_SETTLED

if TYPE_CHECKING:
    from conductor.spec.model import Workflow

ACTIVE = TASK_IN_PROGRESS
TERMINAL = TASK_SETTLED
# Held for approval, and the decision until the runner acts on it (TASK_HELD).
HELD_BY = {"task_awaiting_approval": "awaiting_approval", "task_approved": "approved",
           "task_rejected": "rejected"}  # fmt: skip


@dataclass
class TaskModel:
    """What the view knows about one task, built from events only."""

    id: str
    group: str | None
    wave: int
    agent: str
    timeout_s: float | None
    estimate_s: float | None
    state: str = "pending"
    attempt: int = 0
    started: float | None = None
    finished: float | None = None
    percent: float | None = None
    step: str = ""
    line: str = ""
    error: str = ""
    warning: str = ""
    order: int = 0  # when it last finished, to list the most recent first
    template: str | None = None  # the fan-out task it was expanded from
    merged: str = ""  # the short merge commit of a succeeded task


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class RunModel:
    """The run as the events tell it: per-task state, gates, the final outcome."""

    def __init__(self, wf: Workflow, selected: Sequence[str], waves: Mapping[str, int]) -> None:
        self.name = wf.name
        self.concurrency = wf.concurrency
        specs = [wf.tasks[t] for t in selected if t in wf.tasks]
        self.tasks = {
            t.id: TaskModel(t.id, t.group, waves.get(t.id, 0), t.agent, t.timeout_s, t.estimate_s,
                            template=t.template)
            for t in specs
        }
        self.wave_count = max(waves.values(), default=-1) + 1
        self.run_id = ""
        self.started: float | None = None
        self.finished: float | None = None
        self.final = ""
        # each gate of the run, a row of the table like a task's
        self.gates = {g: GateRow(g, "pending") for g in declared_gates(wf, selected)}
        self.log_path = ""
        self.alert = ""
        self.settled: list[str] = []  # conflicts retries settled, as the run ended
        self.spend = Spend()  # the run's running total: every attempt's task_usage
        self.pools = PoolBoard(wf, selected)  # slots used, spend and pauses per pool
        self._seq = 0

    def apply(self, row: EventRow) -> None:
        kind, d = row["kind"], row["data"] or {}
        # agent-provided text (output lines, progress, errors) reaches the live view only
        # escaped: every string the view shows comes from here
        d = {k: safe(v) if isinstance(v, str) else v for k, v in d.items()}
        self.run_id = self.run_id or row["run_id"]
        self.pools.apply(row)
        task = self.tasks.get(row["task_id"] or "")
        if task is not None:
            self._task_event(task, kind, d, row["ts"])
        elif kind == "run_started":
            self.started = row["ts"]
            self.concurrency = int(d.get("concurrency") or self.concurrency)
        elif kind == "run_finished":
            self.final, self.finished = str(d.get("state", "")), row["ts"]
            self.settled = [safe(s.text()) for s in settled_from_docs(d.get("settled") or ())]
            for g in self.gates.values():
                g.end()
        elif kind.startswith("gate_"):
            group = str(d.get("group"))
            self.gates.setdefault(group, GateRow(group, "pending")).apply(kind, d, row["ts"])
        elif kind == "log_written":
            self.log_path = str(d.get("path", ""))
        elif kind == "system_alert":
            self.alert = str(d.get("message") or d.get("alert") or "system alert")

    def _task_event(self, t: TaskModel, kind: str, d: Mapping[str, Any], ts: float) -> None:
        if kind == "task_started":
            t.state, t.started, t.finished = "running", ts, None
            t.attempt = int(d.get("attempt") or t.attempt + 1)
            t.agent = str(d.get("agent") or t.agent)
            t.percent, t.step, t.line, t.warning = None, "", "", ""
        elif kind in ("task_progress", "task_output"):
            t.percent = _num(d["percent"]) if "percent" in d else t.percent
            t.step = str(d.get("step") or d.get("message") or t.step)
            t.line = str(d.get("line") or t.line)
        elif kind == "task_state":  # validating / merging, if the engine reports them
            t.state = str(d.get("state") or t.state)
        elif kind.startswith("validation_"):
            t.state = "validating"
        elif kind == "merged":
            t.state, t.merged = "merging", str(d.get("commit") or "")[:10]
        elif kind == "task_warning":
            t.warning = str(d.get("warning", ""))
        elif kind == "task_usage":
            self.spend += Spend.of(d)
        elif kind == "task_retrying":
            t.state, t.error = "retrying", str(d.get("error") or "")
        elif kind in HELD_BY:  # a person decides; a reject's message is shown with it
            t.state, t.error = HELD_BY[kind], str(d.get("message") or "")
        else:
            self._task_end(t, kind, d, ts)

    def _task_end(self, t: TaskModel, kind: str, d: Mapping[str, Any], ts: float) -> None:
        ends = {
            "task_completed": ("succeeded", ""),
            "task_failed": ("failed", str(d.get("error") or "failed")),
            "task_blocked": ("blocked", f"blocked by {d.get('cause')}"),
            "task_skipped": ("skipped", str(d.get("reason") or "")),
        }
        if kind not in ends:
            return
        t.state, t.error = ends[kind]
        t.finished = ts
        t.step, t.line, t.warning = "", "", ""  # stale once the task is over
        t.percent = None
        self._seq += 1
        t.order = self._seq

    # -- derived numbers ----------------------------------------------------------

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tasks.values():
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def current_wave(self) -> int | None:
        open_waves = [t.wave for t in self.tasks.values() if t.state not in TERMINAL]
        return min(open_waves) if open_waves else None

    def active_groups(self) -> list[str]:
        groups = (t.group for t in self.tasks.values() if t.state in ACTIVE and t.group)
        return sorted(set(groups))

    def eta(self, now: float) -> float | None:
        """Seconds left: per wave, the longer of its longest task and its work spread over
        the concurrency. Estimates are scaled by how long estimated tasks really took;
        unestimated tasks are expected to take the mean observed duration."""
        done = [
            t for t in self.tasks.values() if t.state == "succeeded" and t.started and t.finished
        ]
        took = {t.id: (t.finished or 0.0) - (t.started or 0.0) for t in done}
        mean = sum(took.values()) / len(took) if took else None
        est = [(t.estimate_s, took[t.id]) for t in done if t.estimate_s]
        ratio = sum(o for _, o in est) / sum(e for e, _ in est) if est else 1.0
        waves: dict[int, list[float]] = {}
        for t in self.tasks.values():
            if t.state in TERMINAL:
                continue
            expect = t.estimate_s * ratio if t.estimate_s else mean
            if expect is None:
                return None
            spent = now - t.started if t.state in ACTIVE and t.started else 0.0
            # an overdue task is not done either: keep a sliver of it in the estimate
            waves.setdefault(t.wave, []).append(max(expect - spent, 0.1 * expect))
        conc = max(1, self.concurrency)
        return sum(max(max(r), sum(r) / conc) for r in waves.values())
