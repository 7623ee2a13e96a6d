"""A run's spans, built from its events alone: the run, each task, each attempt, the
phases of an attempt (setup, agent, validate, approval, merge) and the group gates.

Plain records, no OpenTelemetry: ``conductor.report.traces`` turns each finished record
into an OTel span, and tests can read them as they are. Span ids come from
``conductor.report.tracing`` (derived from the run id), so nothing here is random and a
later runner rebuilds exactly what an earlier one had open (``replay``).

The tree: run → task → attempt → phase. A task's span runs from its first event (queued
or started) to its end (succeeded, failed, blocked, skipped, cancelled); each attempt is a
child of it; phases are children of their attempt, opened by ``task_phase`` events (and by
``task_awaiting_approval`` / ``task_approved``) and closed by the next phase or the end of
the attempt. A failure ends the phase it happened in, its attempt and (if final) its task
with status ERROR and the error text (events are masked before any sink sees them).

A resumed run is one more *segment*: a root span of its own ("conductor resume"), a child
of the first runner's root, with task spans of its own; attempts keep their run-wide
numbers. A runner that was killed never ended its open spans: the next one replays the
stored events, ends those spans where the killed runner's last event was, and exports
them (each span id is exported once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from conductor.report.genai import invoke_agent, usage_attrs
from conductor.report.tracing import attempt_span, gate_span, phase_span, run_span, task_span
from conductor.spec.model import Workflow
from conductor.state.records import EventRow

AttrValue = Union[str, bool, int, float]  # noqa: UP007 (3.10: a runtime alias)
Attrs = dict[str, AttrValue]
MAX_TEXT = 2000  # error texts and check output kept on a span (a trace is not a log)


@dataclass
class SpanRecord:
    name: str
    span_id: int
    parent_id: int | None
    start: float  # seconds since the epoch, as events carry them
    attrs: Attrs = field(default_factory=dict)
    end: float | None = None
    error: str | None = None  # status ERROR with this description
    events: list[tuple[str, float, Attrs]] = field(default_factory=list)


Finished = Callable[[SpanRecord], None]


def _discard(span: SpanRecord) -> None:
    pass


@dataclass
class _Task:
    span: SpanRecord
    agent: str = ""
    n: int = 0
    attempt: SpanRecord | None = None
    phase: SpanRecord | None = None
    opened: dict[str, int] = field(default_factory=dict)  # phase -> times in this attempt


def _text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


class TraceBuilder:
    """Feed it one runner's events in order; finished spans go to ``out``."""

    def __init__(self, run_id: str, wf: Workflow, segment: int, started: float,
                 out: Finished = _discard) -> None:  # fmt: skip
        self.run_id, self.wf, self.segment, self.out = run_id, wf, segment, out
        verb = "run" if segment == 0 else "resume"
        parent = None if segment == 0 else run_span(run_id, 0)
        attrs: Attrs = {"conductor.run.id": run_id, "conductor.workflow": wf.name,
                        "conductor.run.segment": segment}  # fmt: skip
        self.root = SpanRecord(f"conductor {verb} {wf.name}", run_span(run_id, segment),
                               parent, started, attrs)  # fmt: skip
        self.tasks: dict[str, _Task] = {}
        self.gates: dict[str, SpanRecord] = {}
        self._gates_opened: dict[str, int] = {}
        self.last = started
        self.over = False

    # -- the event stream -----------------------------------------------------------

    def feed(self, row: EventRow) -> None:
        if self.over:
            return
        kind, tid, ts = row["kind"], row["task_id"], float(row["ts"])
        data: Mapping[str, Any] = row["data"] or {}
        self.last = max(self.last, ts)
        if tid is not None and tid in self.wf.tasks:
            handler = _TASK_HANDLERS.get(kind)
            if handler is not None:
                handler(self, tid, data, ts)
        elif kind in _RUN_HANDLERS:
            _RUN_HANDLERS[kind](self, data, ts)

    def abandon(self, out: Finished) -> None:
        """The runner stopped without a `run_finished` (killed): end what it left open
        where its last event was, and hand those spans to ``out``."""
        if self.over:
            return
        self.out = out
        self.root.error = "the runner stopped without finishing the run (killed?); resumed later"
        self._finish(self.last, "interrupted")

    # -- the run --------------------------------------------------------------------

    def _run_started(self, d: Mapping[str, Any], ts: float) -> None:
        for key in ("tasks", "strategy", "concurrency"):
            if d.get(key) is not None:
                self.root.attrs[f"conductor.run.{key}"] = d[key]

    def _run_finished(self, d: Mapping[str, Any], ts: float) -> None:
        state = str(d.get("state") or "interrupted")
        counts = d.get("counts") or {}
        for name, count in counts.items():
            self.root.attrs[f"conductor.run.tasks.{name}"] = int(count)
        if state == "failed":
            shown = ", ".join(f"{c} {s}" for s, c in counts.items() if c)
            self.root.error = f"run failed: {shown}" if shown else "run failed"
        self._finish(ts, state)

    def _finish(self, ts: float, state: str) -> None:
        outcome = "cancelled" if state == "cancelled" else "interrupted"
        for tid in list(self.tasks):
            self._end_attempt(self.tasks[tid], ts, outcome, None)
            self._end_task(tid, ts, outcome, None)
        for group in list(self.gates):
            self._end_gate(group, ts, None)
        self.root.attrs["conductor.run.state"] = state
        self._close(self.root, ts)
        self.over = True

    def _alert(self, d: Mapping[str, Any], ts: float) -> None:
        text = d.get("alert") or d.get("warning") or d.get("message") or "budget reached"
        self.root.events.append(("alert", ts, {"conductor.alert": _text(text)}))

    def _gate_started(self, d: Mapping[str, Any], ts: float) -> None:
        group = str(d.get("group"))
        nth = self._gates_opened[group] = self._gates_opened.get(group, 0) + 1
        sid = gate_span(self.run_id, group, self.segment, nth)
        self.gates[group] = SpanRecord(f"gate {group}", sid, self.root.span_id, ts,
                                       {"conductor.group": group})  # fmt: skip

    def _gate_passed(self, d: Mapping[str, Any], ts: float) -> None:
        self._end_gate(str(d.get("group")), ts, None)

    def _gate_failed(self, d: Mapping[str, Any], ts: float) -> None:
        out = str(d.get("output") or "").strip()
        self._end_gate(str(d.get("group")), ts, "gate failed" + (f": {out}" if out else ""))

    def _end_gate(self, group: str, ts: float, error: str | None) -> None:
        span = self.gates.pop(group, None)
        if span is not None:
            span.error = _text(error) if error else None
            self._close(span, ts)

    # -- tasks and attempts -----------------------------------------------------------

    def _task(self, tid: str, ts: float) -> _Task:
        t = self.tasks.get(tid)
        if t is None:
            attrs: Attrs = {"conductor.task.id": tid}
            group = self.wf.tasks[tid].group
            if group:
                attrs["conductor.task.group"] = group
            sid = task_span(self.run_id, tid, self.segment)
            t = self.tasks[tid] = _Task(SpanRecord(f"task {tid}", sid, self.root.span_id, ts,
                                                   attrs))  # fmt: skip
        return t

    def _queued(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        why = _text(d.get("reason") or "")
        self._task(tid, ts).span.events.append(("queued", ts, {"conductor.reason": why}))

    def _started(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        t = self._task(tid, ts)
        self._end_attempt(t, ts, "interrupted", None)  # never both: a lost ending
        t.n = int(d.get("attempt") or t.n + 1)
        t.agent = str(d.get("agent") or self.wf.tasks[tid].agent or "")
        attrs: Attrs = {"conductor.task.id": tid, "conductor.attempt": t.n}
        if t.agent:
            attrs["conductor.agent"] = t.agent
        sid = attempt_span(self.run_id, tid, t.n)
        t.attempt = SpanRecord(f"attempt {t.n}", sid, t.span.span_id, ts, attrs)
        t.opened = {}

    def _end_attempt(self, t: _Task, ts: float, outcome: str, error: str | None) -> None:
        if t.attempt is None:
            return
        if t.phase is not None:
            if error and t.phase.error is None:  # the phase it failed in
                t.phase.error = _text(error)
            self._close(t.phase, ts)
            t.phase = None
        t.attempt.attrs["conductor.outcome"] = outcome
        t.attempt.error = _text(error) if error else None
        self._close(t.attempt, ts)
        t.attempt = None

    def _end_task(self, tid: str, ts: float, state: str, error: str | None) -> None:
        t = self.tasks.pop(tid, None)
        if t is None:
            return
        self._end_attempt(t, ts, state, error)
        t.span.attrs["conductor.task.state"] = state
        t.span.error = _text(error) if error else None
        self._close(t.span, ts)

    def _completed(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        self._task(tid, ts)  # a held task merged by a later runner: its span here
        self._end_task(tid, ts, "succeeded", None)

    def _retrying(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        error = str(d.get("error") or "failed")
        self._end_attempt(self._task(tid, ts), ts, "failed", error)

    def _failed(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        error = str(d.get("error") or "failed")
        t = self._task(tid, ts)
        out = str(d.get("output") or "").strip()
        if out and t.attempt is not None:  # the tail of its log: what a reader wants next
            t.attempt.attrs["conductor.output"] = _text(out[-MAX_TEXT:])
        self._end_attempt(t, ts, "failed", error)
        self._end_task(tid, ts, "failed", error)

    def _paused(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        t = self._task(tid, ts)
        if t.attempt is not None:
            t.attempt.attrs["conductor.paused"] = _text(d.get("error") or "usage limit")
        self._end_attempt(t, ts, "paused", None)

    def _cancelled(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        self._task(tid, ts)
        self._end_task(tid, ts, "cancelled", None)

    def _blocked(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        self._task(tid, ts).span.attrs["conductor.blocked_by"] = _text(d.get("cause") or "")
        self._end_task(tid, ts, "blocked", None)

    def _skipped(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        self._task(tid, ts).span.attrs["conductor.skip_reason"] = _text(d.get("reason") or "")
        self._end_task(tid, ts, "skipped", None)

    def _warning(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        t = self._task(tid, ts)
        target = t.attempt or t.span
        target.events.append(("warning", ts, {"conductor.warning": _text(d.get("warning"))}))

    # -- phases -------------------------------------------------------------------------

    def _open_phase(self, t: _Task, phase: str, ts: float) -> SpanRecord | None:
        if t.attempt is None:
            return None
        if t.phase is not None:
            self._close(t.phase, ts)
        nth = t.opened[phase] = t.opened.get(phase, 0) + 1
        tid = str(t.attempt.attrs["conductor.task.id"])
        sid = phase_span(self.run_id, tid, t.n, phase, nth)
        attrs: Attrs = {"conductor.phase": phase}
        t.phase = SpanRecord(phase, sid, t.attempt.span_id, ts, attrs)
        if phase == "agent":
            named = invoke_agent(self.wf.agents.get(t.agent), t.agent, t.phase.attrs)
            t.phase.name = named or t.phase.name
        return t.phase

    def _phase(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        self._open_phase(self._task(tid, ts), str(d.get("phase") or "phase"), ts)

    def _usage(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        t = self._task(tid, ts)
        span = t.phase if t.phase is not None and t.phase.attrs.get("conductor.phase") == "agent" \
            else t.attempt  # fmt: skip
        if span is None:
            return
        span.attrs.update(usage_attrs(d, _text))

    def _check(self, tid: str, d: Mapping[str, Any], ts: float, ok: bool) -> None:
        t = self._task(tid, ts)
        span = t.phase or t.attempt
        if span is None:
            return
        name = _text(d.get("check") or "check")
        span.events.append((f"check {'passed' if ok else 'failed'}", ts, {"conductor.check": name}))
        if not ok:
            span.error = f"{span.error}; {name}" if span.error else f"check failed: {name}"

    def _awaiting(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        self._open_phase(self._task(tid, ts), "approval", ts)

    def _approved(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        t = self._task(tid, ts)
        if t.attempt is not None:
            t.attempt.attrs["conductor.approved_by"] = _text(d.get("by") or "--auto-approve")
        self._open_phase(t, "merge", ts)  # the runner merges an approved attempt next

    def _rejected(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        t = self._task(tid, ts)
        if t.phase is not None:
            t.phase.error = _text(f"rejected: {d.get('message') or 'no reason given'}")

    def _merged(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        t = self._task(tid, ts)
        if t.attempt is not None:
            t.attempt.attrs["conductor.merge_commit"] = str(d.get("commit") or "")
        if t.phase is not None:
            self._close(t.phase, ts)
            t.phase = None

    def _conflict(self, tid: str, d: Mapping[str, Any], ts: float) -> None:
        t = self._task(tid, ts)
        if t.phase is not None:
            paths = ", ".join(str(p) for p in d.get("paths") or [])
            t.phase.error = _text(f"merge conflict in {paths}")

    def _close(self, span: SpanRecord, ts: float) -> None:
        span.end = max(ts, span.start)
        self.out(span)


_TaskHandler = Callable[[TraceBuilder, str, Mapping[str, Any], float], None]
_TASK_HANDLERS: dict[str, _TaskHandler] = {
    "task_queued": TraceBuilder._queued,
    "task_started": TraceBuilder._started,
    "task_phase": TraceBuilder._phase,
    "task_usage": TraceBuilder._usage,
    "validation_passed": lambda b, tid, d, ts: b._check(tid, d, ts, True),
    "validation_failed": lambda b, tid, d, ts: b._check(tid, d, ts, False),
    "task_awaiting_approval": TraceBuilder._awaiting,
    "task_approved": TraceBuilder._approved,
    "task_rejected": TraceBuilder._rejected,
    "merged": TraceBuilder._merged,
    "conflict": TraceBuilder._conflict,
    "task_completed": TraceBuilder._completed,
    "task_retrying": TraceBuilder._retrying,
    "task_failed": TraceBuilder._failed,
    "task_paused": TraceBuilder._paused,
    "task_cancelled": TraceBuilder._cancelled,
    "task_blocked": TraceBuilder._blocked,
    "task_skipped": TraceBuilder._skipped,
    "task_warning": TraceBuilder._warning,
}
_RunHandler = Callable[[TraceBuilder, Mapping[str, Any], float], None]
_RUN_HANDLERS: dict[str, _RunHandler] = {
    "run_started": TraceBuilder._run_started,
    "run_finished": TraceBuilder._run_finished,
    "gate_started": TraceBuilder._gate_started,
    "gate_passed": TraceBuilder._gate_passed,
    "gate_failed": TraceBuilder._gate_failed,
    "system_alert": TraceBuilder._alert,
    "budget_reached": TraceBuilder._alert,
    "task_warning": TraceBuilder._alert,
}


def replay(run_id: str, wf: Workflow, events: Iterable[EventRow], started: float,
           out: Finished) -> int:  # fmt: skip
    """Feed the events earlier runners of this run recorded; hand ``out`` only the spans a
    killed runner left open (what ended was exported by its own runner). Returns the
    segment number of the runner about to continue: one per `run_started` so far."""
    builder: TraceBuilder | None = None
    segment = 0
    for row in events:
        if row["kind"] == "run_started":
            if builder is not None:
                builder.abandon(out)
                segment += 1
            builder = TraceBuilder(run_id, wf, segment, started if segment == 0 else row["ts"])
        if builder is not None:
            builder.feed(row)
    if builder is None:
        return 0
    builder.abandon(out)
    return segment + 1
