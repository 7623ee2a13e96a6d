"""Agent output -> progress steps and an AgentReport (session, cost, tokens, errors, limits).

One parser per preset; lines that are not what a parser expects (stderr noise, plain text,
truncated JSON) are ignored, never fatal. Output formats as verified against the CLIs:

* claude-code `--output-format stream-json --verbose` (docs.claude.com headless / Agent SDK
  message types): `{"type":"system","subtype":"init","session_id"}`, `assistant` messages
  whose message.content[] holds `tool_use` blocks {name, input}, `rate_limit_event`
  {rate_limit_info: {status: "allowed"|"rejected", resetsAt: epoch}}, and a final
  `result` {subtype: "success"|"error_max_turns"|"error_during_execution"|..., is_error,
  result, errors, total_cost_usd, usage{input_tokens, output_tokens,
  cache_creation_input_tokens, cache_read_input_tokens}, num_turns, session_id}; the
  init message names the `model`. A usage
  limit arrives as result text "Claude AI usage limit reached|<epoch>" (issues
  anthropics/claude-code#2490, #11429).
* codex `exec --json` (openai/codex codex-rs/exec/src/exec_events.rs and
  event_processor_with_jsonl_output.rs): thread.started{thread_id}, turn.started,
  item.started/updated/completed{item{id, type: agent_message | reasoning |
  command_execution{command, exit_code, status} | file_change{changes[{path, kind}]} |
  mcp_tool_call{server, tool} | web_search{query} | todo_list | error{message}}},
  turn.completed{usage{input_tokens, cached_input_tokens, output_tokens}} (recent versions
  report the thread total there), turn.failed{error{message}}, error{message}. No cost,
  and no model in the events (one that carries a top-level `model` is read).
  Usage limits: "You've hit your usage limit. ... try again in 2 days 3 hours 4 minutes."
  (issues openai/codex#3124, #3899).
* gemini `--output-format stream-json` (google-gemini/gemini-cli
  packages/core/src/output/types.ts): init{session_id, model}, message, tool_use{tool_name,
  tool_id, parameters}, tool_result, error{severity, message}, result{status:
  "success"|"error", error{type, message}, stats{input_tokens (the prompt, cached part
  included), output_tokens, cached, input, tool_calls, models{...}}} (convertToStreamStats).
  No cost, no turn count.
* aider prints plain text: its model, tokens and cost lines are read (``aider_output``);
  no structured result (ok=None).
* shell and custom commands print plain text: no structured result (ok=None).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conductor.agents import inflight


@dataclass
class AgentReport:
    ok: bool | None = None  # None when the agent gave no structured result (plain shell)
    error: str | None = None
    session_id: str | None = None
    cost_usd: float | None = None
    tokens_in: int | None = None  # all input, cached included
    tokens_out: int | None = None
    tokens_cache: int | None = None  # of tokens_in, read from or written to a cache
    turns: int | None = None
    model: str | None = None
    rate_limited: bool = False
    reset_at: float | None = None  # epoch seconds when the limit resets, if stated


_EPOCH_LIMIT = re.compile(r"limit reached\|(\d{9,11})")
_STRICT_LIMIT = re.compile(r"limit reached\|\d{9,11}|you[’']?ve hit your usage limit", re.I)
_LIMIT_WORDS = re.compile(
    r"usage limit|rate.?limit|hit your limit|out of extra usage|quota exceeded"
    r"|resource.?exhausted|too many requests|\b429\b",
    re.I,
)
_RETRY_IN = re.compile(r"try again in\s+((?:\d+\s*[a-z]+[\s,]*(?:and\s+)?)+)", re.I)
_UNIT = re.compile(r"(\d+)\s*(d|h|m|s)", re.I)
_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _note_limit(report: AgentReport, text: str, strict: bool = False) -> None:
    """Mark ``report`` rate limited when ``text`` is a known usage/rate-limit message."""
    if not (_STRICT_LIMIT if strict else _LIMIT_WORDS).search(text):
        return
    report.rate_limited = True
    if m := _EPOCH_LIMIT.search(text):
        report.reset_at = float(m.group(1))
    elif m := _RETRY_IN.search(text):
        secs = sum(int(n) * _UNIT_S[u.lower()] for n, u in _UNIT.findall(m.group(1)))
        report.reset_at = time.time() + secs if secs else None


def _short(text: str, limit: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


class OutputParser:
    """Plain output (shell tasks, custom commands): no structured result, ``ok`` stays None."""

    # True when the CLI reports tokens since its session began, so a resumed session's
    # report includes the earlier attempts' tokens (codex's turn.completed usage).
    session_totals = False

    def __init__(self, root: Path | None = None) -> None:
        self.report = AgentReport()
        self.root = f"{root}/" if root is not None else None
        self._last_step: str | None = None
        self._calls: set[str] = set()  # ids of tool calls started, their result not seen

    def feed(self, line: str) -> str | None:
        """One output line; returns a progress step when the line shows a new one."""
        step = self._line(line)
        if step is None or step == self._last_step:
            return None
        self._last_step = step
        return step

    def in_flight(self) -> bool:
        """A tool call was started and its result has not come: the agent is silent
        because it waits on its own work (a test suite), busy rather than idle."""
        return bool(self._calls)

    def result(self) -> AgentReport:
        """The report so far (final once the process has exited)."""
        r = self.report
        if r.ok:  # a limit message the agent recovered from did not stop it
            r.rate_limited, r.reset_at = False, None
        return r

    def _line(self, line: str) -> str | None:
        return None

    def _rel(self, path: str) -> str:
        """Paths relative to the worktree read better in a progress line."""
        if self.root and path.startswith(self.root):
            return path[len(self.root) :]
        return path

    def _tool_step(self, name: str, params: Any) -> str:
        p = params if isinstance(params, dict) else {}
        if isinstance(p.get("command"), str):
            return _short(f"{name}: {p['command']}")
        for key in ("file_path", "notebook_path", "absolute_path", "path"):
            if isinstance(p.get(key), str):
                return _short(f"{name} {self._rel(p[key])}")
        for key in ("pattern", "query", "url", "description"):
            if isinstance(p.get(key), str):
                return _short(f"{name}: {p[key]}")
        return name


class _JsonLinesParser(OutputParser):
    """JSON-lines output; anything that is not a JSON object is ignored."""

    format = ""  # whose tool-call events `inflight.track` follows

    def _line(self, line: str) -> str | None:
        text = line.strip()
        if not text.startswith("{"):
            if text:
                _note_limit(self.report, text, strict=True)
            return None
        try:
            event = json.loads(text)
        except ValueError:
            return None
        if not isinstance(event, dict):
            return None
        inflight.track(self.format, event, self._calls)
        return self._event(event)

    def _event(self, ev: dict[str, Any]) -> str | None:
        raise NotImplementedError


def _num(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _run_cost(ev: dict[str, Any]) -> Any:
    """This process's cost. After --resume, total_cost_usd also counts the session's earlier
    runs; model_usage_since_last_result (claude 2.1.x) holds this run's per model."""
    since = ev.get("model_usage_since_last_result")
    if isinstance(since, dict) and since:
        costs = [m.get("costUSD") if isinstance(m, dict) else None for m in since.values()]
        if all(isinstance(c, (int, float)) for c in costs):
            return sum(costs)
    return ev.get("total_cost_usd", ev.get("cost_usd"))


class ClaudeParser(_JsonLinesParser):
    format = "claude"

    def _event(self, ev: dict[str, Any]) -> str | None:
        kind, r = ev.get("type"), self.report
        if isinstance(ev.get("session_id"), str):
            r.session_id = ev["session_id"]
        if kind == "system" and isinstance(ev.get("model"), str):  # the init message
            r.model = ev["model"]
        if kind == "assistant":
            message = ev.get("message") or {}
            if r.model is None and isinstance(message.get("model"), str):
                r.model = message["model"]
            content = message.get("content")
            steps = [
                self._tool_step(str(b.get("name")), b.get("input"))
                for b in content or []
                if isinstance(b, dict) and b.get("type") == "tool_use"
            ]
            return steps[-1] if steps else None
        if kind == "rate_limit_event":
            info = ev.get("rate_limit_info") or {}
            if info.get("status") == "rejected":
                r.rate_limited = True
                reset = info.get("resetsAt")
                r.reset_at = float(reset) if isinstance(reset, (int, float)) else r.reset_at
        elif kind == "result":
            self._result(ev)
        return None

    def _result(self, ev: dict[str, Any]) -> None:
        r = self.report
        r.ok = ev.get("subtype") == "success" and not ev.get("is_error")
        cost = _run_cost(ev)
        r.cost_usd = float(cost) if isinstance(cost, (int, float)) else r.cost_usd
        usage = ev.get("usage") or {}
        if isinstance(usage, dict) and usage:
            cached = ("cache_creation_input_tokens", "cache_read_input_tokens")
            r.tokens_cache = sum(_num(usage.get(k)) for k in cached)
            r.tokens_in = _num(usage.get("input_tokens")) + r.tokens_cache
            r.tokens_out = _num(usage.get("output_tokens"))
        r.turns = ev["num_turns"] if isinstance(ev.get("num_turns"), int) else r.turns
        if not r.ok:
            errors = ev.get("errors")
            text = ev.get("result") if isinstance(ev.get("result"), str) else ""
            if not text and isinstance(errors, list):
                text = "; ".join(str(e) for e in errors)
            r.error = text or str(ev.get("subtype") or "error")
            _note_limit(r, r.error)
            # 2.1.x: subtype "success" + is_error + api_error_status 429/529 once its own
            # retries are spent; 529's text ("Overloaded") has none of the limit words
            r.rate_limited = r.rate_limited or ev.get("api_error_status") in (429, 529)


class CodexParser(_JsonLinesParser):
    session_totals = True
    format = "codex"

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(root)
        self._completed = self._failed = self._errored = False

    def _event(self, ev: dict[str, Any]) -> str | None:
        kind, r = ev.get("type"), self.report
        if isinstance(ev.get("model"), str):  # not in today's events; read if one says it
            r.model = ev["model"]
        if kind == "thread.started" and isinstance(ev.get("thread_id"), str):
            r.session_id = ev["thread_id"]
        elif kind in ("item.started", "item.updated", "item.completed"):
            item = ev.get("item")
            return self._item(item) if isinstance(item, dict) else None
        elif kind == "turn.completed":
            self._completed = True
            r.turns = (r.turns or 0) + 1
            usage = ev.get("usage") or {}
            # Recent codex reports the thread's running total here; one exec = one turn.
            # input_tokens counts the cached ones too (OpenAI's usage), as tokens_in does.
            r.tokens_in, r.tokens_out = (
                _num(usage.get("input_tokens")),
                _num(usage.get("output_tokens")),
            )
            r.tokens_cache = _num(usage.get("cached_input_tokens"))
        elif kind in ("turn.failed", "error"):
            err = ev.get("error") if kind == "turn.failed" else ev
            message = str((err or {}).get("message") or kind)
            self._failed = self._failed or kind == "turn.failed"
            self._errored = True
            r.error = message
            _note_limit(r, message)
        return None

    def _item(self, item: dict[str, Any]) -> str | None:
        kind = item.get("type")
        if kind == "command_execution":
            return _short(f"Bash: {item.get('command', '')}")
        if kind == "file_change":
            paths = [
                self._rel(str(c.get("path")))
                for c in item.get("changes") or []
                if isinstance(c, dict)
            ]
            return _short("Edit " + ", ".join(paths)) if paths else None
        if kind == "mcp_tool_call":
            return f"{item.get('server')}.{item.get('tool')}"
        if kind == "web_search":
            return _short(f"Search: {item.get('query', '')}")
        return None

    def result(self) -> AgentReport:
        r = self.report
        if self._failed or (self._errored and not self._completed):
            r.ok = False
        elif self._completed:
            r.ok, r.error = True, None
        return super().result()


class GeminiParser(_JsonLinesParser):
    format = "gemini"

    def _event(self, ev: dict[str, Any]) -> str | None:
        kind, r = ev.get("type"), self.report
        if kind == "init":
            if isinstance(ev.get("session_id"), str):
                r.session_id = ev["session_id"]
            r.model = ev["model"] if isinstance(ev.get("model"), str) else r.model
        elif kind == "tool_use":
            return self._tool_step(str(ev.get("tool_name")), ev.get("parameters"))
        elif kind == "error" and isinstance(ev.get("message"), str):
            _note_limit(r, ev["message"])
        elif kind == "result":
            r.ok = ev.get("status") == "success"
            stats = ev.get("stats") or {}
            if isinstance(stats, dict) and stats:
                r.tokens_in = _num(stats.get("input_tokens"))  # the prompt, cached included
                r.tokens_out = _num(stats.get("output_tokens"))
                r.tokens_cache = _num(stats.get("cached"))
                models = stats.get("models")
                if r.model is None and isinstance(models, dict) and models:
                    r.model = ", ".join(sorted(str(m) for m in models))
            if not r.ok:
                r.error = str((ev.get("error") or {}).get("message") or "error")
                _note_limit(r, r.error)
        return None


class SniffingParser(OutputParser):
    """For custom commands: adopts a preset's parser if the output turns out to be one."""

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(root)
        self._inner: OutputParser | None = None

    def _line(self, line: str) -> str | None:
        if self._inner is None and line.lstrip().startswith("{"):
            self._inner = self._detect(line)
        return self._inner.feed(line) if self._inner is not None else None

    def _detect(self, line: str) -> OutputParser | None:
        try:
            ev = json.loads(line)
        except ValueError:
            return None
        kind = ev.get("type") if isinstance(ev, dict) else None
        root = Path(self.root[:-1]) if self.root else None
        if kind == "system" and ev.get("subtype") == "init":
            return ClaudeParser(root)
        if kind == "thread.started":
            return CodexParser(root)
        return GeminiParser(root) if kind == "init" else None

    def result(self) -> AgentReport:
        return self._inner.result() if self._inner is not None else self.report

    def in_flight(self) -> bool:
        return self._inner is not None and self._inner.in_flight()


def _aider_parser(root: Path | None) -> OutputParser:
    from conductor.agents.aider_output import AiderParser  # it builds on OutputParser

    return AiderParser(root)


_PARSERS: dict[str, Callable[[Path | None], OutputParser]] = {
    "claude-code": ClaudeParser,
    "codex": CodexParser,
    "gemini": GeminiParser,
    "aider": _aider_parser,
    "command": SniffingParser,
    "shell": OutputParser,
}


def make_parser(kind: str, worktree: Path | None = None) -> OutputParser:
    """The parser for a profile kind (a preset name, or ``command``)."""
    return _PARSERS.get(kind, OutputParser)(worktree)
