"""Tool calls in flight, per agent (issue 11): a call the agent started, waits on, and whose
result has not come makes its silence busy, not idle. Events as each CLI prints them."""

from __future__ import annotations

import json
from typing import Any

from conductor.agents.parsers import OutputParser, make_parser


def feed(parser: OutputParser, *events: dict[str, Any]) -> bool:
    for ev in events:
        parser.feed(json.dumps(ev))
    return parser.in_flight()


def claude_msg(role: str, *blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": role, "message": {"role": role, "content": list(blocks)}, "session_id": "s"}


def test_claude_tool_use_until_its_tool_result() -> None:
    p = make_parser("claude-code")
    assert not feed(p, {"type": "system", "subtype": "init", "session_id": "s"})
    use = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "pytest"}}
    assert feed(p, claude_msg("assistant", {"type": "text", "text": "running"}, use))
    # a second call in parallel; the first one's result leaves the second in flight
    use2 = {**use, "id": "toolu_2"}
    assert feed(p, claude_msg("assistant", use2))
    assert feed(p, claude_msg("user", {"type": "tool_result", "tool_use_id": "toolu_1"}))
    assert not feed(p, claude_msg("user", {"type": "tool_result", "tool_use_id": "toolu_2"}))
    assert not feed(p, claude_msg("assistant", {"type": "text", "text": "done"}))


def test_claude_subagent_is_not_a_call_in_flight_its_own_calls_are() -> None:
    p = make_parser("claude-code")
    task = {"type": "tool_use", "id": "toolu_t", "name": "Task", "input": {"prompt": "look"}}
    assert not feed(p, claude_msg("assistant", task))  # its model may stall like any other
    inner = {"type": "tool_use", "id": "toolu_i", "name": "Bash", "input": {"command": "make"}}
    assert feed(p, {**claude_msg("assistant", inner), "parent_tool_use_id": "toolu_t"})
    assert not feed(p, claude_msg("user", {"type": "tool_result", "tool_use_id": "toolu_i"}))


def test_claude_result_ends_whatever_was_in_flight() -> None:
    p = make_parser("claude-code")
    use = {"type": "tool_use", "id": "toolu_9", "name": "Bash", "input": {}}
    assert feed(p, claude_msg("assistant", use))
    assert not feed(p, {"type": "result", "subtype": "error_during_execution", "is_error": True})


def test_codex_mcp_call_or_search_started_until_completed_but_not_a_command() -> None:
    p = make_parser("codex")
    call = {"id": "item_1", "type": "mcp_tool_call", "server": "db", "tool": "migrate",
            "status": "in_progress"}  # fmt: skip
    assert not feed(p, {"type": "thread.started", "thread_id": "t"}, {"type": "turn.started"})
    assert feed(p, {"type": "item.started", "item": call})
    assert feed(p, {"type": "item.updated", "item": call})
    # other items come and go meanwhile: a message is not a call
    msg = {"id": "item_2", "type": "agent_message", "text": "waiting"}
    assert feed(p, {"type": "item.started", "item": msg}, {"type": "item.completed", "item": msg})
    assert not feed(p, {"type": "item.completed", "item": {**call, "status": "completed"}})
    search = {"id": "item_3", "type": "web_search", "query": "x"}
    assert feed(p, {"type": "item.started", "item": search})
    assert not feed(p, {"type": "turn.failed", "error": {"message": "boom"}})
    # codex hands a running command back to its model within 30 s (it may be a dev server
    # left running while the model stream hangs): its CPU speaks for it, not its open item
    cmd = {"id": "item_4", "type": "command_execution", "command": "pytest",
           "status": "in_progress"}  # fmt: skip
    assert not feed(p, {"type": "item.started", "item": cmd})


def test_gemini_tool_use_until_tool_result_by_tool_id() -> None:
    p = make_parser("gemini")
    assert not feed(p, {"type": "init", "session_id": "s", "model": "m"})
    assert feed(p, {"type": "tool_use", "tool_name": "run_shell_command", "tool_id": "a",
                    "parameters": {"command": "make test"}})  # fmt: skip
    assert feed(p, {"type": "tool_result", "tool_id": "other", "status": "success"})
    assert not feed(p, {"type": "tool_result", "tool_id": "a", "status": "success"})
    assert feed(p, {"type": "tool_use", "tool_name": "x", "tool_id": "b", "parameters": {}})
    assert not feed(p, {"type": "result", "status": "success", "stats": {}})


def test_plain_output_is_never_in_flight_and_a_sniffed_stream_is() -> None:
    shell = make_parser("shell")
    shell.feed('{"type": "tool_use", "tool_id": "a"}')
    assert not shell.in_flight()
    custom = make_parser("command")
    assert not custom.in_flight()
    use = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}
    assert feed(custom, {"type": "system", "subtype": "init", "session_id": "s"},
                claude_msg("assistant", use))  # fmt: skip
    custom.feed("not json at all")
    assert custom.in_flight()
