"""Whether a run is traced, and its trace and span ids, derived from its id: the one
owner of those rules.

OpenTelemetry itself is not imported here (this module is what the runner consults on
every attempt, traces on or off; ``subscribe`` imports the rest only when traces are
wanted). The ids are pure functions of names the store already holds, so

- a resumed run, in a new process, continues the same trace (the trace id is the first
  16 bytes of sha256(run id));
- an attempt's span id is known before the attempt starts, so its agent is handed a
  W3C ``TRACEPARENT`` naming that span while the span itself is only exported when the
  attempt ends (``conductor.report.traces`` builds it from the event stream);
- a runner that was killed leaves nothing to look up: the next one computes the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conductor.spec.model import Workflow
    from conductor.state.events import Emitter

# A standard OTel switch that turns traces off whatever else is set.
_DISABLED = "OTEL_SDK_DISABLED"
ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether the user asked for traces, by the standard variables: an exporter named in
    ``OTEL_TRACES_EXPORTER`` (``none`` is off), or an OTLP endpoint. Off by default, so a
    run without them never imports OpenTelemetry."""
    if environ.get(_DISABLED, "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return any(environ.get(name, "").strip() for name in ENDPOINTS)


def _digest(*parts: str) -> bytes:
    # NUL-joined: ("a", "b/c") and ("a/b", "c") must not collide (task ids hold slashes)
    return hashlib.sha256("\0".join(parts).encode()).digest()


def _nonzero(value: int) -> int:
    return value or 1  # all-zero ids are invalid in W3C trace context (odds: 2**-64)


def trace_id(run_id: str) -> int:
    """The run's trace: the first 16 bytes of sha256(run id)."""
    return _nonzero(int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:16], "big"))


def span_id(run_id: str, *names: str) -> int:
    """A span of the run named by ``names`` (e.g. "task", task id, segment)."""
    return _nonzero(int.from_bytes(_digest(run_id, *names)[:8], "big"))


def run_span(run_id: str, segment: int) -> int:
    """The root span of one runner's share of the run: segment 0 started it, each resume
    adds one (its span is a child of segment 0's)."""
    return span_id(run_id, "run", str(segment))


def task_span(run_id: str, task_id: str, segment: int) -> int:
    # per segment: a task a killed runner left open is closed by the next one, which
    # opens its own (one span id is never exported twice)
    return span_id(run_id, "task", task_id, str(segment))


def attempt_span(run_id: str, task_id: str, attempt: int) -> int:
    # attempt numbers go on counting across resumes: unique within the run
    return span_id(run_id, "attempt", task_id, str(attempt))


def phase_span(run_id: str, task_id: str, attempt: int, phase: str, nth: int) -> int:
    return span_id(run_id, "phase", task_id, str(attempt), phase, str(nth))


def gate_span(run_id: str, group: str, segment: int, nth: int) -> int:
    return span_id(run_id, "gate", group, str(segment), str(nth))


def traceparent(run_id: str, task_id: str, attempt: int) -> str:
    """The W3C trace context naming an attempt's span, as its processes get it."""
    return f"00-{trace_id(run_id):032x}-{attempt_span(run_id, task_id, attempt):016x}-01"


def subscribe(emit: Emitter, wf: Workflow, environ: Mapping[str, str]) -> bool:
    """Add the trace sink to a run's emitter when the standard variables ask for traces.

    True when traces are exported (the attempts' processes then get ``TRACEPARENT``).
    When they are wanted but cannot be (the `otel` extra is not installed, an exporter
    nobody provides), the run goes on untraced and says why once, as a warning."""
    if not wanted(environ):
        return False
    try:
        from conductor.report import traces
    except ImportError as exc:
        why = f"{exc.name} is not installed (pip install 'conductor-dag[otel]')"
    else:
        try:
            emit.sinks.append(traces.TraceSink(emit.store, emit.run_id, wf, environ))
            return True
        except traces.TraceSetupError as exc:
            why = str(exc)
    emit("task_warning", None, warning=f"no traces are exported: {why}")
    return False
