"""The ASGI application: routes, the token guard, and the few actions a page can take.

Starlette, because it is the small, typed, well-kept core that FastAPI itself stands on:
routing, streaming responses (for SSE), static files and a test client, and nothing we
would not use (no ORM, no templates engine, no validation layer). Handlers are plain
functions: Starlette runs them in its thread pool, where the store's own lock keeps the
one read-only connection safe.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from conductor.errors import ConductorError
from conductor.state.readonly import ReadOnlyStore
from conductor.state.records import RunRow, TaskRow
from conductor.web import metrics, sse
from conductor.web.pages import Site, run_page, run_parts, runs_page
from conductor.web.shape import Shapes
from conductor.web.taskpage import approvals_available, log_chunk, task_page

STATIC = Path(__file__).with_name("static")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class Missing(Exception):
    """A run or task the URL names is not in the store: 404."""


class TokenGuard:
    """Every request carries the token (header ``X-Conductor-Token``, ``Authorization:
    Bearer``, or ``?token=``), else 401. Without a token (a loopback bind) only the Host
    header is checked, so a web page elsewhere cannot reach the server by DNS rebinding."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.token is None:
            host = (request.headers.get("host") or "").rsplit(":", 1)[0]
            ok = host in LOOPBACK_HOSTS or host.startswith("127.")
        else:
            ok = self._carries_token(request)
        if not ok:
            text = "401: this server wants its token: ?token=… or X-Conductor-Token\n"
            await PlainTextResponse(text, status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _carries_token(self, request: Request) -> bool:
        assert self.token is not None
        auth = request.headers.get("authorization", "")
        given = (request.headers.get("x-conductor-token")
                 or (auth[7:] if auth.lower().startswith("bearer ") else "")
                 or request.query_params.get("token", ""))  # fmt: skip
        return hmac.compare_digest(given.encode(), self.token.encode())


def _token(request: Request) -> str | None:
    """The token to put in links: the one this request carried in its query, if any."""
    return request.query_params.get("token") or None


def _site(request: Request) -> Site:
    site: Site = request.app.state.site
    return site


def _run(request: Request) -> RunRow:
    run = _site(request).store.run(request.path_params["run"])
    if run is None:
        raise Missing(f"no run {request.path_params['run']}")
    return run


def _task(request: Request, run: RunRow) -> TaskRow:
    task = _site(request).store.task(run["id"], request.path_params["task"])
    if task is None:
        raise Missing(f"run {run['id']} has no task {request.path_params['task']}")
    return task


def home(request: Request) -> Response:
    return HTMLResponse(runs_page(_site(request), _token(request)))


def run_view(request: Request) -> Response:
    return HTMLResponse(run_page(_site(request), _run(request), _token(request)))


def run_json(request: Request) -> Response:
    """The changing parts of a run page, for the script to swap in."""
    return JSONResponse(run_parts(_site(request), _run(request), _token(request)))


def task_view(request: Request) -> Response:
    run = _run(request)
    return HTMLResponse(task_page(_site(request), run, _task(request, run), _token(request)))


def task_log(request: Request) -> Response:
    run = _run(request)
    task = _task(request, run)
    atts = _site(request).store.attempts(run["id"], task["task_id"])
    n = request.query_params.get("attempt", "")
    pick = [a for a in atts if str(a["n"]) == n] or atts[-1:]
    if not pick:
        return JSONResponse({"text": "", "offset": 0, "done": False})
    offset = request.query_params.get("offset", "")
    return JSONResponse(log_chunk(pick[0], int(offset) if offset.isdigit() else None))


def events(request: Request) -> Response:
    run = _run(request)
    after = sse.last_event_id(request.headers.get("last-event-id"),
                              request.query_params.get("after"))  # fmt: skip
    return StreamingResponse(
        sse.stream(_site(request).store, run["id"], after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def metrics_view(request: Request) -> Response:
    store = _site(request).store
    assert isinstance(store, ReadOnlyStore)
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(metrics.text(store), media_type=CONTENT_TYPE_LATEST)


async def decide(request: Request) -> Response:
    """Approve or reject a task awaiting approval: the same functions as the commands."""
    body = await request.body()
    return await anyio.to_thread.run_sync(_decide, request, request.path_params["what"], body)


def _decide(request: Request, what: str, body: bytes) -> Response:
    origin = request.headers.get("origin")
    if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
        return PlainTextResponse("403: a page of another site cannot decide", 403)
    if what not in ("approve", "reject") or not approvals_available():
        raise Missing(f"no action {what}")
    from conductor.ops import approve as decisions
    from conductor.state.store import Store

    run = _run(request)
    task = _task(request, run)
    message = str(_body(body).get("message") or "") or None
    # the one write a page makes, through a short-lived writable store, closed at once
    with Store(_site(request).store.path) as store:
        if what == "approve":
            decisions.approve(store, run, task["task_id"])
        else:
            decisions.reject(store, run, task["task_id"], message)
    return JSONResponse({"ok": True, "task": task["task_id"], "decision": what})


def _body(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


async def _missing(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(f"404: {exc}\n", status_code=404)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConductorError)
    return PlainTextResponse(exc.render() + "\n", status_code=409)


def make_app(store: ReadOnlyStore, token: str | None) -> ASGIApp:
    """The whole site over ``store``; ``token`` None serves loopback clients only."""
    routes = [
        Route("/", home),
        Route("/metrics", metrics_view),
        Route("/runs/{run}", run_view),
        Route("/runs/{run}/parts", run_json),
        Route("/runs/{run}/events", events),
        # a fan-out expansion's id may hold '/' (`for_each: [src/a]` makes `T[src/a]`):
        # `path` takes it whole. Such an id always ends in ']', so a path ending in /log
        # or /approve is never one: those routes go first, or the page would take them.
        Route("/runs/{run}/tasks/{task:path}/log", task_log),
        Route("/runs/{run}/tasks/{task:path}/{what}", decide, methods=["POST"]),
        Route("/runs/{run}/tasks/{task:path}", task_view),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={Missing: _missing,
                                                       ConductorError: _refused})  # fmt: skip
    app.state.site = Site(store, Shapes(store.path.parent.parent))
    return TokenGuard(app, token)
