"""A scripted model server on 127.0.0.1 for driving the real agent CLIs in tests.

Standard library only. It speaks just enough of two wire protocols:

* the Anthropic Messages API (``POST /v1/messages``, streaming SSE: ``message_start``,
  ``content_block_start/delta/stop`` with ``text_delta`` and ``input_json_delta``,
  ``message_delta`` with ``stop_reason`` and usage, ``message_stop``) for Claude Code;
* the OpenAI Responses API (``POST /v1/responses``, streaming ``response.created``,
  ``response.output_item.added/done``, ``response.output_text.delta``,
  ``response.completed`` with usage) for Codex.

What the "model" answers is a scenario: a list of steps, one consumed per agent turn (a
request that offers tools), in order. A step is a plain dict, so a scenario can live in JSON:

    {"tool": "Write", "input": {"file_path": "{cwd}/a.txt", "content": "hi\\n"}}
    {"tool": "shell", "input": {"command": ["bash", "-lc", "make"]}}   # a function call
    {"text": "All done."}                                  # final answer, end of turn
    {"status": 429, "retry_after": 1}                      # an HTTP error instead
    {"status": 429, "error": {"type": "usage_limit_reached"}}  # fields of its error body
    {"stall": 30}                                          # start answering, then go silent
    {"delay": 2, "text": "slow"}                           # sleep before answering
    {"usage": {"input_tokens": 100, "output_tokens": 7}}   # on any answering step
    {"headers": {"x-name": "value"}}                       # extra response headers

``{cwd}`` in a tool input is replaced by the agent's working directory, read from the
request (both CLIs state it in their context), because tools want absolute paths and a
test does not know the worktree's path in advance. Once the scenario is used up every turn
answers with ``final_text``. Requests without tools (title generation and the like) never
consume a step. Every request is recorded in :attr:`ModelServer.requests`.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Step = dict[str, Any]
DEFAULT_USAGE = {"input_tokens": 100, "output_tokens": 20}
_CWD_PATTERNS = (
    re.compile(r"<cwd>([^<]+)</cwd>"),  # codex's environment_context
    re.compile(r"[Ww]orking directory: (/[^\s\"\\]+)"),  # claude's environment section
)


@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it was not JSON
    step: Step | None = None  # the scenario step it consumed, if any

    @property
    def text(self) -> str:
        return json.dumps(self.body) if not isinstance(self.body, str) else self.body


@dataclass
class _State:
    steps: list[Step]
    final_text: str
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def next_step(self) -> Step:
        with self.lock:
            return self.steps.pop(0) if self.steps else {"text": self.final_text}


def find_cwd(body_text: str) -> str:
    """The agent's working directory as its request last states it: a resumed conversation
    also holds the directory of the session it continues, earlier in the history."""
    for pattern in _CWD_PATTERNS:
        if found := pattern.findall(body_text):
            return str(found[-1]).strip()
    return "."


def _fill(value: Any, cwd: str) -> Any:
    """``{cwd}`` in every string of a tool input; other braces stay as written."""
    if isinstance(value, str):
        return value.replace("{cwd}", cwd)
    if isinstance(value, list):
        return [_fill(v, cwd) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, cwd) for k, v in value.items()}
    return value


def _sse(event: str, **data: Any) -> bytes:
    """One server-sent event; both APIs repeat the event name as the data's ``type``."""
    return f"event: {event}\ndata: {json.dumps({'type': event, **data})}\n\n".encode()


# ----------------------------------------------------------------------------- Anthropic


def _anthropic_events(step: Step, model: str, n: int, cwd: str) -> list[bytes]:
    usage = {**DEFAULT_USAGE, **step.get("usage", {})}
    message: dict[str, Any] = {
        "id": f"msg_{n:04d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1},
    }
    blocks: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if step.get("text"):
        text = {"type": "text_delta", "text": str(step["text"])}
        blocks.append(({"type": "text", "text": ""}, text))
    if step.get("tool"):
        start = {"type": "tool_use", "id": f"toolu_{n:04d}", "name": step["tool"], "input": {}}
        args = json.dumps(_fill(step.get("input", {}), cwd))  # streamed as one JSON fragment
        blocks.append((start, {"type": "input_json_delta", "partial_json": args}))
    out = [_sse("message_start", message=message)]
    for i, (start, delta) in enumerate(blocks):
        out.append(_sse("content_block_start", index=i, content_block=start))
        out.append(_sse("content_block_delta", index=i, delta=delta))
        out.append(_sse("content_block_stop", index=i))
    stop = {"stop_reason": "tool_use" if step.get("tool") else "end_turn", "stop_sequence": None}
    out.append(_sse("message_delta", delta=stop, usage={"output_tokens": usage["output_tokens"]}))
    out.append(_sse("message_stop"))
    return out


def _anthropic_error(status: int, message: str) -> dict[str, Any]:
    kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


# -------------------------------------------------------------------------------- OpenAI


def _responses_events(step: Step, model: str, n: int, cwd: str) -> list[bytes]:
    created = {"id": f"resp_{n:04d}", "object": "response", "model": model}
    items: list[dict[str, Any]] = []
    if step.get("text"):
        content = [{"type": "output_text", "text": str(step["text"]), "annotations": []}]
        items.append({"type": "message", "id": f"msg_{n:04d}", "role": "assistant",
                      "status": "completed", "content": content})  # fmt: skip
    if step.get("tool"):
        items.append(_function_call(step, n, cwd))
    out = [_sse("response.created", response={**created, "status": "in_progress"})]
    for i, item in enumerate(items):
        out.append(_sse("response.output_item.added", output_index=i, item=item))
        if item["type"] == "message":
            text = item["content"][0]["text"]
            out.append(_sse("response.output_text.delta", item_id=item["id"], output_index=i,
                            content_index=0, delta=text))  # fmt: skip
        out.append(_sse("response.output_item.done", output_index=i, item=item))
    done = {**created, "status": "completed", "output": items, "usage": _openai_usage(step)}
    out.append(_sse("response.completed", response=done))
    return out


def _openai_usage(step: Step) -> dict[str, Any]:
    usage = {**DEFAULT_USAGE, **step.get("usage", {})}
    return {
        "input_tokens": usage["input_tokens"],
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage["output_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage["input_tokens"] + usage["output_tokens"],
    }


def _function_call(step: Step, n: int, cwd: str) -> dict[str, Any]:
    args = _fill(step.get("input", {}), cwd)
    if step.get("custom"):  # a freeform tool (codex's apply_patch grammar tool): raw input
        return {
            "type": "custom_tool_call",
            "id": f"ctc_{n:04d}",
            "call_id": f"call_{n:04d}",
            "name": step["tool"],
            "input": args,
            "status": "completed",
        }
    return {
        "type": "function_call",
        "id": f"fc_{n:04d}",
        "call_id": f"call_{n:04d}",
        "name": step["tool"],
        "arguments": json.dumps(args),
        "status": "completed",
    }


def _openai_error(status: int, message: str, extra: dict[str, Any]) -> dict[str, Any]:
    kind = "rate_limit_exceeded" if status == 429 else "server_error"
    error = {"message": message, "type": kind, "code": kind, "param": None}
    return {"error": {**error, **extra}}  # e.g. {"type": "usage_limit_reached", "resets_at": T}


# -------------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are recorded, not printed

    def _handle(self) -> None:
        size = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(size).decode(errors="replace") if size else ""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        req = Request(self.command, self.path, dict(self.headers), body)
        state = self.server.state
        with state.lock:
            state.requests.append(req)
        path = self.path.split("?")[0]
        if self.command == "POST" and path.endswith("/messages/count_tokens"):
            return self._json(200, {"input_tokens": 100})
        api = "anthropic" if path.endswith("/messages") else None
        api = "openai" if path.endswith("/responses") else api
        if api is None or not isinstance(body, dict):
            return self._json(404, {"error": {"message": f"no such endpoint: {self.path}"}})
        if not body.get("tools"):
            return self._answer(api, {"text": "ok"}, body, req.text)  # side request: no step
        req.step = state.next_step()
        self._answer(api, req.step, body, req.text)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def _answer(self, api: str, step: Step, body: dict[str, Any], text: str) -> None:
        state = self.server.state
        if step.get("delay") and state.stop.wait(float(step["delay"])):
            return
        if step.get("status"):
            return self._error(api, int(step["status"]), step)
        n, model, cwd = next(state.ids), str(body.get("model", "model")), find_cwd(text)
        build = _anthropic_events if api == "anthropic" else _responses_events
        events = build(step, model, n, cwd)
        if not body.get("stream"):
            return self._json(200, _non_streaming(api, events))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")  # the body ends when the socket closes
        for key, value in step.get("headers", {}).items():
            self.send_header(key, str(value))
        self.end_headers()
        self.close_connection = True
        if step.get("stall") is not None:
            # the opening event only, then silence: the agent waits on a live connection
            self.wfile.write(events[0])
            self.wfile.flush()
            state.stop.wait(None if step["stall"] is True else float(step["stall"]))
            return
        for chunk in events:
            self.wfile.write(chunk)
        self.wfile.flush()

    def _error(self, api: str, status: int, step: Step) -> None:
        message = str(step.get("message") or f"scripted error {status}")
        extra = step.get("error", {})
        if api == "anthropic":
            doc = _anthropic_error(status, message)
            doc["error"].update(extra)
        else:
            doc = _openai_error(status, message, extra)
        headers = {"retry-after": str(step["retry_after"])} if "retry_after" in step else {}
        self._json(status, doc, {**headers, **step.get("headers", {})})

    def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def _non_streaming(api: str, events: list[bytes]) -> dict[str, Any]:
    """The final object of a streamed answer, for clients that asked for no stream."""
    docs = [json.loads(chunk.decode().split("data: ", 1)[1]) for chunk in events]
    if api == "openai":
        return dict(docs[-1]["response"])
    message = dict(docs[0]["message"])
    content: list[dict[str, Any]] = []
    for doc in docs:
        if doc["type"] == "content_block_start":
            content.append(dict(doc["content_block"]))
        elif doc["type"] == "content_block_delta":
            delta = doc["delta"]
            if delta["type"] == "text_delta":
                content[-1]["text"] += delta["text"]
            else:
                content[-1]["input"] = json.loads(delta["partial_json"])
        elif doc["type"] == "message_delta":
            message["stop_reason"] = doc["delta"]["stop_reason"]
            message["usage"] = {**message["usage"], **doc["usage"]}
    message["content"] = content
    return message


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # an agent killed mid-answer hung up: expected in stall tests
        super().handle_error(request, client_address)


class ModelServer:
    """The scripted server; use as a context manager. ``url`` is its base URL."""

    def __init__(self, steps: list[Step] | None = None, final_text: str = "Done.") -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State(list(steps or []), final_text)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[Request]:
        with self._server.state.lock:
            return list(self._server.state.requests)

    def turns(self) -> list[Request]:
        """The requests that consumed a scenario step (or the final text), in order."""
        return [r for r in self.requests if r.step is not None]

    def add(self, *steps: Step) -> None:
        with self._server.state.lock:
            self._server.state.steps.extend(steps)

    def start(self) -> ModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.state.stop.set()  # releases stalled and delayed answers
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """`python tests/modelserver.py SCENARIO.json`: serve a scenario by hand, log requests."""
    import time

    steps = json.loads(Path(sys.argv[1]).read_text()) if len(sys.argv) > 1 else []
    with ModelServer(steps) as server:
        print(server.url, flush=True)
        seen = 0
        while True:
            time.sleep(0.2)
            for r in server.requests[seen:]:
                print(r.method, r.path, json.dumps(r.step), flush=True)
            seen = len(server.requests)


if __name__ == "__main__":
    main()
