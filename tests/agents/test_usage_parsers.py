"""What each agent reports spending, read from its real output format: cost, input, output
and cache tokens, turns and model (issue 11). Sample lines are the CLIs' own shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conductor.agents.parsers import AgentReport, make_parser
from conductor.run.usage import own_share
from conductor.state.records import AttemptRow


def report_of(kind: str, lines: list[str]) -> AgentReport:
    parser = make_parser(kind, Path("/w"))
    for line in lines:
        parser.feed(line)
    return parser.result()


def spend(r: AgentReport) -> tuple[object, ...]:
    return r.cost_usd, r.tokens_in, r.tokens_out, r.tokens_cache, r.turns, r.model


CLAUDE = [
    '{"type":"system","subtype":"init","cwd":"/w","session_id":"9d9f07e1","tools":["Bash"],'
    '"model":"claude-sonnet-4-5-20250929","permissionMode":"bypassPermissions"}',
    '{"type":"assistant","message":{"model":"claude-sonnet-4-5-20250929","content":'
    '[{"type":"text","text":"Done"}]},"session_id":"9d9f07e1"}',
    '{"type":"result","subtype":"success","is_error":false,"duration_ms":5012,"num_turns":7,'
    '"result":"All done.","session_id":"9d9f07e1","total_cost_usd":0.0042,"usage":'
    '{"input_tokens":1200,"cache_creation_input_tokens":300,"cache_read_input_tokens":4000,'
    '"output_tokens":800}}',
]


def test_claude_reports_cache_tokens_of_its_input_and_the_init_model() -> None:
    r = report_of("claude-code", CLAUDE)
    # tokens_in stays the whole input, cache included; tokens_cache is the cached part of it
    assert spend(r) == (0.0042, 5500, 800, 4300, 7, "claude-sonnet-4-5-20250929")
    assert report_of("command", ["wrapper says hi", *CLAUDE]).tokens_cache == 4300  # sniffed


def test_claude_model_falls_back_to_the_assistant_message() -> None:
    r = report_of("claude-code", CLAUDE[1:])
    assert r.model == "claude-sonnet-4-5-20250929"


def test_codex_reports_cached_input_tokens_and_no_model_unless_an_event_names_one() -> None:
    lines = [
        '{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}',
        '{"type":"turn.started"}',
        '{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,'
        '"output_tokens":122}}',
    ]
    assert spend(report_of("codex", lines)) == (None, 24763, 122, 24448, 1, None)
    named = [lines[0].replace("}", ',"model":"gpt-5-codex"}'), *lines[1:]]
    assert report_of("codex", named).model == "gpt-5-codex"


def test_gemini_reports_cached_tokens_and_the_init_model() -> None:
    stats = {"total_tokens": 2235, "input_tokens": 2200, "output_tokens": 35, "cached": 1000,
             "input": 1200, "duration_ms": 812, "tool_calls": 1,
             "models": {"gemini-2.5-flash": {"total_tokens": 2235, "input_tokens": 2200,
                                             "output_tokens": 35, "cached": 1000,
                                             "input": 1200}}}  # fmt: skip
    result = json.dumps({"type": "result", "timestamp": "t", "status": "success", "stats": stats})
    init = '{"type":"init","timestamp":"t","session_id":"g-1","model":"gemini-2.5-pro"}'
    assert spend(report_of("gemini", [init, result])) == (
        None, 2200, 35, 1000, None, "gemini-2.5-pro")  # fmt: skip
    # without the init's model, the models that answered
    assert report_of("gemini", [result]).model == "gemini-2.5-flash"


AIDER_START = [
    "Aider v0.86.2",
    "Main model: anthropic/claude-sonnet-4-20250514 with diff edit format, infinite output",
    "Weak model: anthropic/claude-3-5-haiku-20241022",
    "Git repo: .git with 12 files",
    "Repo-map: disabled",
]


def test_aider_one_reply_tokens_cost_and_model() -> None:
    lines = [*AIDER_START, "Applied edit to a.txt",
             "Tokens: 2.3k sent, 145 received. Cost: $0.0012 message, $0.0012 session."]  # fmt: skip
    r = report_of("aider", lines)
    assert spend(r) == (0.0012, 2300, 145, 0, 1, "anthropic/claude-sonnet-4-20250514")
    assert r.ok is None  # plain text: no structured result


def test_aider_replies_add_up_and_the_session_figure_is_not_counted_twice() -> None:
    lines = [
        "Model: openai/gpt-4o with whole edit format",
        # both cache parts: aider puts the Cost part on a line of its own
        "Tokens: 1,234 sent, 1.2k cache write, 3.4k cache hit, 56 received.",
        "Cost: $0.02 message, $0.50 session.",  # the session had spent $0.48 before
        "Tokens: 12k sent, 1.5M received. Cost: $0.000015 message, $0.500015 session.",
    ]
    r = report_of("aider", lines)
    assert r.cost_usd == pytest.approx(0.020015)  # the messages, summed; not 0.500015
    assert (r.tokens_in, r.tokens_out, r.tokens_cache) == (13234, 1_500_056, 4600)
    assert (r.turns, r.model) == (2, "openai/gpt-4o")


def test_aider_without_a_price_reports_tokens_only_and_noise_is_ignored() -> None:
    lines = [
        "Model: ollama/qwen2.5-coder with whole edit format",
        "Tokens: 950 sent, 12 received.",
        "The model said: Tokens: lots sent, many received.",
        "Tokens: a handful",
        "litellm.RateLimitError: rate limit exceeded, please retry later",
    ]
    r = report_of("aider", lines)
    assert spend(r) == (None, 950, 12, 0, 1, "ollama/qwen2.5-coder")
    assert r.rate_limited


def test_shell_output_reports_nothing() -> None:
    r = report_of("shell", ["Tokens: 2.3k sent, 145 received.", "Model: x with y"])
    assert spend(r) == (None,) * 6


def _attempt(n: int, session: str, t_in: int, t_out: int, cache: int) -> AttemptRow:
    row = dict.fromkeys(AttemptRow.__annotations__)
    row |= {"n": n, "session_id": session, "tokens_in": t_in, "tokens_out": t_out,
            "tokens_cache": cache}  # fmt: skip
    return row  # type: ignore[return-value]


def test_a_resumed_codex_session_records_only_its_own_share_cache_included() -> None:
    r = AgentReport(session_id="th", tokens_in=3000, tokens_out=300, tokens_cache=2500)
    own_share(r, "th", 2, [_attempt(1, "th", 1000, 100, 800), _attempt(2, "th", 0, 0, 0)])
    assert (r.tokens_in, r.tokens_out, r.tokens_cache) == (2000, 200, 1700)
    fresh = AgentReport(session_id="new", tokens_in=3000, tokens_cache=2500)
    own_share(fresh, "th", 2, [_attempt(1, "th", 1000, 100, 800)])
    assert (fresh.tokens_in, fresh.tokens_cache) == (3000, 2500)  # not a resumed session
