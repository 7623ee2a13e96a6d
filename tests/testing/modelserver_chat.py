"""tests/modelserver.py plus the OpenAI Chat Completions API (Aider) and the Gemini API.

Aider (through litellm) talks ``POST /v1/chat/completions`` and edits files through its
edit format, not through tools: the scripted "model" answers with text such as a whole-file
edit block. So every chat-completions request consumes a step (its requests carry no
``tools`` to tell turns from side requests), answered streamed (``chat.completion.chunk``
SSE ending in ``data: [DONE]``) or not, as the request asks. Errors (``status``), ``delay``,
``stall`` and ``usage`` steps work as in tests/modelserver.py.

Gemini CLI (``GOOGLE_GEMINI_BASE_URL``) posts ``/v1beta/models/M:streamGenerateContent?alt=sse``
(and ``:generateContent`` for side requests): a request offering ``tools`` consumes a step,
answered with a ``text`` part and/or one ``functionCall`` part (``{cwd}`` in its args is the
workspace directory the request states); others get plain text. Every other path is served
by tests/modelserver.py's handler unchanged.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from tests.testing.modelserver import (
    DEFAULT_USAGE,
    ModelServer,
    Request,
    Step,
    _fill,
    _Handler,
    _openai_error,
    _Server,
    _State,
)

# gemini-cli's session context: "- **Workspace Directories:**\n  - /abs/path", found in
# the request's JSON text, where the newline is the two characters \n
_GEMINI_CWD = re.compile(r"Workspace Directories:\*\*(?:\s|\\n)+- (/[^\s\"\\]+)")


def _usage(step: Step) -> dict[str, int]:
    usage = {**DEFAULT_USAGE, **step.get("usage", {})}
    inp, out = int(usage["input_tokens"]), int(usage["output_tokens"])
    return {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}


def completion(step: Step, model: str, n: int) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` answering ``step``."""
    message = {"role": "assistant", "content": str(step.get("text", ""))}
    return {
        "id": f"chatcmpl-{n:04d}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(step),
    }


def chunks(step: Step, model: str, n: int) -> list[bytes]:
    """The streamed answer: role, content, finish (with usage), then ``[DONE]``."""
    base = {"id": f"chatcmpl-{n:04d}", "object": "chat.completion.chunk",
            "created": 1_700_000_000, "model": model}  # fmt: skip
    deltas: list[tuple[dict[str, Any], str | None]] = [
        ({"role": "assistant", "content": ""}, None),
        ({"content": str(step.get("text", ""))}, None),
        ({}, "stop"),
    ]
    out = []
    for delta, finish in deltas:
        doc = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if finish:
            doc["usage"] = _usage(step)
        out.append(f"data: {json.dumps(doc)}\n\n".encode())
    return [*out, b"data: [DONE]\n\n"]


def gemini_cwd(body_text: str) -> str:
    """The workspace directory gemini-cli states in its session context."""
    found = _GEMINI_CWD.findall(body_text)
    return str(found[-1]) if found else "."


def gemini_response(step: Step, model: str, n: int, cwd: str) -> dict[str, Any]:
    """A ``GenerateContentResponse``: text and/or one function call, with usage."""
    parts: list[dict[str, Any]] = []
    if step.get("text"):
        parts.append({"text": str(step["text"])})
    if step.get("tool"):
        args = _fill(step.get("input", {}), cwd)
        parts.append({"functionCall": {"id": f"call_{n:04d}", "name": step["tool"], "args": args}})
    usage = {**DEFAULT_USAGE, **step.get("usage", {})}
    inp, out = int(usage["input_tokens"]), int(usage["output_tokens"])
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": inp,
            "candidatesTokenCount": out,
            "totalTokenCount": inp + out,
        },
        "modelVersion": model,
        "responseId": f"resp_{n:04d}",
    }


class _ChatHandler(_Handler):
    def _handle(self) -> None:
        path = self.path.split("?")[0]
        if ":generateContent" in path or ":streamGenerateContent" in path:
            return self._gemini()
        if not path.endswith("/chat/completions"):
            return super()._handle()
        size = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(size).decode(errors="replace") if size else ""
        body: Any = json.loads(raw) if raw else {}
        req = _record(self, body)
        state = self.server.state
        req.step = state.next_step()
        if req.step.get("delay") and state.stop.wait(float(req.step["delay"])):
            return None
        if req.step.get("status"):
            return self._chat_error(req.step)
        n, model = next(state.ids), str(body.get("model", "model"))
        if not body.get("stream"):
            return self._json(200, completion(req.step, model, n))
        return self._stream(req.step, chunks(req.step, model, n))

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def _gemini(self) -> None:
        size = int(self.headers.get("content-length") or 0)
        body: Any = json.loads(self.rfile.read(size) or b"{}")
        req = _record(self, body)
        state = self.server.state
        # only a turn offering tools is the agent's; routing and the like get plain text
        step: Step = {"text": "ok"}
        if body.get("tools"):
            req.step = step = state.next_step()
        if step.get("delay") and state.stop.wait(float(step["delay"])):
            return None
        if step.get("status"):
            return self._gemini_error(step)
        model = self.path.split("/models/")[-1].split(":")[0]
        doc = gemini_response(step, model, next(state.ids), gemini_cwd(req.text))
        if ":streamGenerateContent" not in self.path:
            return self._json(200, doc)
        return self._stream(step, [f"data: {json.dumps(doc)}\n\n".encode()])

    def _gemini_error(self, step: Step) -> None:
        status = int(step["status"])
        kind = "RESOURCE_EXHAUSTED" if status == 429 else "INTERNAL"
        error = {"code": status, "message": str(step.get("message") or f"scripted {status}"),
                 "status": kind, **step.get("error", {})}  # fmt: skip
        headers = {"retry-after": str(step["retry_after"])} if "retry_after" in step else {}
        self._json(status, {"error": error}, headers)

    def _chat_error(self, step: Step) -> None:
        status = int(step["status"])
        doc = _openai_error(status, str(step.get("message") or f"scripted error {status}"),
                            step.get("error", {}))  # fmt: skip
        headers = {"retry-after": str(step["retry_after"])} if "retry_after" in step else {}
        self._json(status, doc, {**headers, **step.get("headers", {})})

    def _stream(self, step: Step, events: list[bytes]) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")  # the body ends when the socket closes
        self.end_headers()
        self.close_connection = True
        if step.get("stall") is not None:
            self.wfile.write(events[0])  # the opening chunk only, then silence
            self.wfile.flush()
            stall = step["stall"]
            self.server.state.stop.wait(None if stall is True else float(stall))
            return
        self.wfile.write(b"".join(events))
        self.wfile.flush()


def _record(handler: _ChatHandler, body: Any) -> Request:
    req = Request(handler.command, handler.path, dict(handler.headers), body)
    with handler.server.state.lock:
        handler.server.state.requests.append(req)
    return req


class ChatModelServer(ModelServer):
    """ModelServer that also answers ``/v1/chat/completions``; same scenario steps."""

    def __init__(self, steps: list[Step] | None = None, final_text: str = "Done.") -> None:
        # ModelServer.__init__ binds its own handler class; this binds the chat one instead
        self._server = _Server(("127.0.0.1", 0), _ChatHandler)
        self._server.state = _State(list(steps or []), final_text)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
