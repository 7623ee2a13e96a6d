"""Which of an agent's tool calls are in flight: started, its result not seen yet, and
the agent waiting on it (the executor takes such silence for work, not a hang).

The events, per CLI (see ``parsers`` for the sources), and which calls the agent waits on:

* claude: ``assistant`` messages hold ``tool_use`` blocks {id, name}; ``user`` messages
  hold the matching ``tool_result`` blocks {tool_use_id}; ``result`` ends the run. Claude
  waits on every tool (a Bash command sent to the background answers at once), except a
  subagent (`Task`/`Agent`): that one's work shows as its own events and tool calls, and
  its model stream can stall like any other.
* codex: ``item.started`` then ``item.completed`` of the same item id;
  ``turn.completed`` / ``turn.failed`` end the turn. Codex waits on an MCP tool call and a
  web search. Not on a command_execution: its unified exec hands a command still running
  back to the model after at most 30 s (``MAX_YIELD_TIME_MS``; the item stays open while
  the command runs in the background, e.g. a dev server), so an open command item says
  nothing about whether codex works or its model stream hangs. A command's own work is
  seen by the executor's CPU check instead.
* gemini: ``tool_use`` {tool_id}, then ``tool_result`` {tool_id}; ``result`` ends it.
  Gemini CLI waits on each tool call.
"""

from __future__ import annotations

from typing import Any

_CODEX_CALLS = ("mcp_tool_call", "web_search")  # what codex waits on (not commands)
_SUBAGENTS = ("Task", "Agent")  # claude's subagent tools: their own calls are tracked
_ENDS = {"claude": ("result",), "codex": ("turn.completed", "turn.failed"), "gemini": ("result",)}


def _ids(found: list[Any]) -> list[str]:
    return [i for i in found if isinstance(i, str)]


def _claude(ev: dict[str, Any]) -> tuple[list[str], list[str]]:
    kind = ev.get("type")
    if kind not in ("assistant", "user"):
        return [], []
    content = (ev.get("message") or {}).get("content")
    blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
    if kind == "assistant":
        uses = [b for b in blocks if b.get("type") == "tool_use"]
        return _ids([b.get("id") for b in uses if b.get("name") not in _SUBAGENTS]), []
    return [], _ids([b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"])


def _codex(ev: dict[str, Any]) -> tuple[list[str], list[str]]:
    kind, item = ev.get("type"), ev.get("item")
    if not isinstance(item, dict):
        return [], []
    if kind == "item.started" and item.get("type") in _CODEX_CALLS:
        return _ids([item.get("id")]), []
    return ([], _ids([item.get("id")])) if kind == "item.completed" else ([], [])


def _gemini(ev: dict[str, Any]) -> tuple[list[str], list[str]]:
    kind = ev.get("type")
    if kind == "tool_use":
        return _ids([ev.get("tool_id")]), []
    return ([], _ids([ev.get("tool_id")])) if kind == "tool_result" else ([], [])


_FORMATS = {"claude": _claude, "codex": _codex, "gemini": _gemini}


def track(fmt: str, ev: dict[str, Any], calls: set[str]) -> None:
    """Update ``calls`` (the ids in flight) with one event of CLI format ``fmt``."""
    parse = _FORMATS.get(fmt)
    if parse is None:
        return
    if ev.get("type") in _ENDS[fmt]:  # the run or turn is over: nothing is in flight
        calls.clear()
        return
    started, finished = parse(ev)
    calls.update(started)
    calls.difference_update(finished)
