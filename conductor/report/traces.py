"""OpenTelemetry traces of a run, exported through the standard ``OTEL_*`` variables.

Imported only when traces are wanted (``conductor.report.tracing.subscribe``): without the
variables, no OpenTelemetry module is ever loaded.

How spans get ids known in advance. A run's trace id is derived from its run id, and an
attempt's span id from (run, task, attempt number), so the runner hands each agent a
``TRACEPARENT`` naming its attempt's span before that span exists anywhere. The SDK's
usual path (a Tracer with a custom IdGenerator) would have to be told each next id
through shared state, and its spans are live objects a killed runner loses. Instead the
events are folded into plain records (``conductor.report.tracebuild``) and each finished
record becomes an SDK ``ReadableSpan`` with its explicit ``SpanContext`` and parent,
handed to a ``BatchSpanProcessor`` and the exporter the variables name. The parent links
are the derived ids themselves, so they hold across processes: the agent's own spans,
its attempt's span, and the spans a resumed runner adds to the same trace. The cost:
every run is recorded (there is no sampler in this path; sample in the collector).

Export runs on the processor's thread; its complaints (a collector that is down) go to
the runner's debug log, never to the terminal. The processor is flushed when the run
ends (bounded, so a dead collector cannot hold the runner up for long).
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from collections.abc import Mapping
from importlib.metadata import entry_points

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from conductor import __version__
from conductor.report.tracebuild import SpanRecord, TraceBuilder, replay
from conductor.report.tracing import trace_id
from conductor.spec.model import Workflow
from conductor.state.records import EventRow
from conductor.state.store import Store

FLUSH_TIMEOUT_S = 5.0  # at the end of a run: a collector that is down costs at most this
_SCOPE = InstrumentationScope("conductor", __version__)
_log = logging.getLogger("conductor.traces")


class TraceSetupError(Exception):
    """Traces were asked for but cannot be exported (said once; the run goes on)."""


def exporter_from_env(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (default ``otlp``, over HTTP/protobuf
    as ``OTEL_EXPORTER_OTLP_*`` configure it); ``console`` writes to stderr, never into
    the output of `run --json`; any other name is an installed exporter's entry point."""
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    return [_exporter(name, environ) for name in names if name and name != "none"]


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter(out=sys.stderr)
    if name == "otlp":
        protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                    or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")  # fmt: skip
        name = "otlp_proto_grpc" if protocol.strip() == "grpc" else "otlp_proto_http"
    found = entry_points(group="opentelemetry_traces_exporter", name=name)
    if not found:
        hint = " (pip install opentelemetry-exporter-otlp-proto-grpc)" if "grpc" in name else ""
        raise TraceSetupError(f"no trace exporter named {name!r} is installed{hint}")
    try:
        exporter = next(iter(found)).load()()
    except Exception as exc:  # a third-party exporter's own complaint, said once
        raise TraceSetupError(f"trace exporter {name!r} could not start: {exc}") from exc
    assert isinstance(exporter, SpanExporter)
    return exporter


def _resource() -> Resource:
    """OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES as the SDK reads them; "conductor"
    where they name no service."""
    res = Resource.create({"service.version": __version__})
    if str(res.attributes.get("service.name", "")).startswith("unknown_service"):
        res = res.merge(Resource({"service.name": "conductor"}))
    return res


class TraceSink:
    """An event sink that exports the run's spans; one per runner process."""

    def __init__(self, store: Store, run_id: str, wf: Workflow, environ: Mapping[str, str],
                 exporters: list[SpanExporter] | None = None) -> None:  # fmt: skip
        exporters = exporter_from_env(environ) if exporters is None else exporters
        _route_sdk_logs()
        self.trace_id = trace_id(run_id)
        self.resource = _resource()
        self.processors = [BatchSpanProcessor(e) for e in exporters]
        self._closed = False
        row = store.run(run_id)
        started = float(row["started"]) if row is not None and row["started"] else 0.0
        # a resumed run: what the runners before this one left open, ended and exported
        segment = replay(run_id, wf, store.events(run_id), started, self.export)
        self.builder = TraceBuilder(run_id, wf, segment, started if segment == 0 else
                                    time.time(), self.export)  # fmt: skip
        atexit.register(self.close)  # the runner died of an exception: keep what ended

    def __call__(self, row: EventRow) -> None:
        if self._closed:
            return
        try:
            self.builder.feed(row)
        except Exception:  # a trace is never worth a run: stop tracing, keep running
            _log.exception("traces stopped at event %s %s", row["kind"], row["task_id"])
            self.builder.over = True
        if self.builder.over:
            self.close()

    def export(self, rec: SpanRecord) -> None:
        span = self.readable(rec)
        for p in self.processors:
            p.on_end(span)

    def readable(self, rec: SpanRecord) -> ReadableSpan:
        flags = TraceFlags(TraceFlags.SAMPLED)
        ctx = SpanContext(self.trace_id, rec.span_id, is_remote=False, trace_flags=flags)
        parent = None
        if rec.parent_id is not None:
            parent = SpanContext(self.trace_id, rec.parent_id, is_remote=False, trace_flags=flags)
        status = Status(StatusCode.ERROR, rec.error) if rec.error else Status(StatusCode.UNSET)
        events = [Event(name, dict(attrs), _ns(ts)) for name, ts, attrs in rec.events]
        return ReadableSpan(
            name=rec.name, context=ctx, parent=parent, resource=self.resource,
            attributes=dict(rec.attrs), events=events, kind=SpanKind.INTERNAL, status=status,
            start_time=_ns(rec.start), end_time=_ns(rec.end if rec.end is not None else rec.start),
            instrumentation_scope=_SCOPE,
        )  # fmt: skip

    def close(self) -> None:
        """Flush and stop the exporters, waiting at most FLUSH_TIMEOUT_S."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)

        def flush() -> None:
            for p in self.processors:
                p.shutdown()  # type: ignore[no-untyped-call]  # exports the queue, stops

        worker = threading.Thread(target=flush, name="trace-flush", daemon=True)
        worker.start()
        worker.join(FLUSH_TIMEOUT_S)
        if worker.is_alive():
            _log.warning("traces: export still running after %ss; the rest is dropped",
                         FLUSH_TIMEOUT_S)  # fmt: skip


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class _ToRunnerLog(logging.Handler):
    """The SDK's and exporters' own warnings, into the runner's debug log (masked there)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger("conductor.traces.sdk").handle(record)


def _route_sdk_logs() -> None:
    sdk = logging.getLogger("opentelemetry")
    if not any(isinstance(h, _ToRunnerLog) for h in sdk.handlers):
        sdk.addHandler(_ToRunnerLog())
    sdk.propagate = False  # Python's last-resort handler would print on the user's terminal
