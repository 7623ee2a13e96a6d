"""A tiny OTLP/HTTP trace collector on 127.0.0.1, for tests of runs in other processes.

It takes what `OTEL_EXPORTER_OTLP_ENDPOINT` sends (protobuf, gzip or not) and keeps each
span as a plain dict; it needs the `otel` extra's packages (opentelemetry-proto).
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Got:
    """One span as the collector received it (ids as lowercase hex)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attrs: dict[str, Any]
    error: str | None  # the description of an ERROR status
    service: str
    events: list[str] = field(default_factory=list)


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class Collector:
    """``with Collector() as c:`` … ``c.endpoint`` … ``c.spans``."""

    def __init__(self) -> None:
        self.spans: list[Got] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                collector._take(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _take(self, body: bytes) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        got = []
        for rs in req.resource_spans:
            res = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    got.append(Got(
                        sp.name, sp.trace_id.hex(), sp.span_id.hex(),
                        sp.parent_span_id.hex() or None,
                        {a.key: _value(a.value) for a in sp.attributes},
                        sp.status.message if sp.status.code == 2 else None,
                        str(res.get("service.name")), [e.name for e in sp.events],
                    ))  # fmt: skip
        with self._lock:
            self.spans.extend(got)

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
