"""The pieces every page is made of: the page shell, escaping, links, badges, tables.

Pages are rendered on the server as plain HTML (they read without JavaScript); the one
script only recolours and refreshes parts as events arrive. Everything shown comes from
the store and the files conductor wrote, which are masked already; nothing here reads
the environment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import get_args
from urllib.parse import quote

from conductor.state.states import TaskState

# Every task state, in the legend's order: what is going on first, how it ended last.
# A state added to states.py later is drawn (grey) and listed at the end.
LEGEND = ("pending", "running", "validating", "merging", "retrying", "paused",
          "awaiting_approval", "approved", "rejected", "succeeded", "failed", "blocked",
          "cancelling", "cancelled", "skipped", "interrupted", "rolled_back")  # fmt: skip
STATES: tuple[str, ...] = (*LEGEND, *(s for s in get_args(TaskState) if s not in LEGEND))
LABELS = {"pending": "pending (queued)", "awaiting_approval": "awaiting approval",
          "rolled_back": "rolled back"}  # fmt: skip


def esc(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def href(path: str, token: str | None, **query: object) -> str:
    """``path`` with its query, the token kept so that links work behind one."""
    params = {k: v for k, v in query.items() if v is not None}
    if token:
        params["token"] = token
    tail = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
    # ids may hold spaces, commas, brackets (fan-out expansions): quoted, '/' kept
    return esc(quote(path, safe="/") + ("?" + tail if tail else ""))


def page(title: str, body: str, token: str | None, *, attrs: str = "") -> str:
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{esc(title)} · conductor</title>"
        f"<link rel=stylesheet href='{href('/static/style.css', token)}'>"
        f"<script defer src='{href('/static/app.js', token)}'></script></head>"
        f"<body{attrs}><header class=top><a href='{href('/', token)}'>conductor</a>"
        f"<span class=crumb>{esc(title)}</span></header><main>{body}</main></body></html>\n"
    )


def state_class(state: str) -> str:
    """The CSS class that colours ``state`` (a name that is safe as a class)."""
    return "st-" + "".join(c if c.isalnum() or c == "_" else "_" for c in state)


def badge(state: str) -> str:
    return f"<span class='badge {state_class(state)}' data-state='{esc(state)}'>" \
           f"{esc(LABELS.get(state, state))}</span>"  # fmt: skip


def legend() -> str:
    items = "".join(f"<li><span class='swatch {state_class(s)}'></span>"
                    f"{esc(LABELS.get(s, s))}</li>" for s in STATES)  # fmt: skip
    return f"<ul class=legend aria-label='task states'>{items}</ul>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "") -> str:
    """A table of cells that are HTML already (callers escape what they put in)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def dl(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list of (label, HTML value) pairs; empty values are left out."""
    items = "".join(f"<div><dt>{esc(k)}</dt><dd>{v}</dd></div>" for k, v in pairs if v)
    return f"<dl class=facts>{items}</dl>"


def short(sha: str | None) -> str:
    return f"<code>{esc(sha[:12])}</code>" if sha else ""
