"""An executor that starts nothing: each :class:`Request` goes to a handler you write.

As a mock transport stands in for the network, :class:`FakeExecutor` stands in for the
processes an attempt would start, so tests of the engine, the scheduler and the attempt
lifecycle drive real git and a real store without agents. The handler sees the request
(argv, working directory, environment: ``CONDUCTOR_TASK_ID`` says whose turn it is) and
answers with a :class:`Reply`: the exit status, the lines the command "printed" (masked
and logged exactly as a real command's would be), and files it "wrote" into the worktree.

    def agent(request: Request) -> Reply:
        if request.env.get("CONDUCTOR_TASK_ID") == "B":
            return Reply(exit_code=1, output=["boom"])
        return Reply(files={"out.txt": "done\\n"})

    ctx = RunContext(..., executor=FakeExecutor(agent))
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from conductor.exec.base import CANCELLED_BEFORE_START, ProcessResult, Reason, Request
from conductor.exec.output import Sink, footer, header


@dataclass(frozen=True)
class Reply:
    """What a faked command did. ``files`` (relative path → text) land in its cwd."""

    exit_code: int | None = 0
    output: Sequence[str] = ()
    files: Mapping[str, str] = field(default_factory=dict)
    reason: Reason = "exited"
    error: str = ""
    duration_s: float = 0.0


Handler = Callable[[Request], "Reply | int | None"]


def succeed(request: Request) -> Reply:
    """The default handler: every command exits 0, prints and changes nothing."""
    return Reply()


class FakeExecutor:
    """Runs no process; records every request. Thread-safe, like the real executors."""

    def __init__(self, handler: Handler = succeed) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def run(self, request: Request) -> ProcessResult:
        with self._lock:
            self.requests.append(request)
        if request.stopped_before_start():
            return CANCELLED_BEFORE_START
        sink = Sink(request.log_path, request.on_line, request.redact)
        try:
            sink.note(header(request.argv, request.cwd))
            result = self._answer(request, sink)
            sink.note(footer(result))
        finally:
            sink.close()
        return sink.told(result)

    def _answer(self, request: Request, sink: Sink) -> ProcessResult:
        t0 = time.monotonic()
        answer = self.handler(request)
        reply = answer if isinstance(answer, Reply) else Reply(exit_code=answer or 0)
        for rel, text in reply.files.items():
            path = request.cwd / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        sink.emit(list(reply.output))
        took = reply.duration_s or time.monotonic() - t0
        code = reply.exit_code if reply.reason == "exited" else None
        return ProcessResult(code, reply.reason, took, None, reply.error)

    def argvs(self) -> list[list[str]]:
        """The argv of every request so far, in order."""
        with self._lock:
            return [list(r.argv) for r in self.requests]
