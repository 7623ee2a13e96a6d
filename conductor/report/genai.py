"""The GenAI semantic conventions of OpenTelemetry, as an agent's spans carry them.

An AI agent's `agent` phase is an ``invoke_agent`` span: named ``invoke_agent {agent}``,
with ``gen_ai.operation.name``, ``gen_ai.agent.name``, ``gen_ai.provider.name`` (the
current name; ``gen_ai.system`` is its deprecated predecessor) and the models requested
and reported; what the agent reported spending goes on the same span as
``gen_ai.usage.input_tokens`` / ``output_tokens`` (input counts cached tokens, as the
convention does) and, where the conventions have no key, ``conductor.*`` attributes
(cost, turns, cache tokens read and written together).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from conductor.spec.model import AgentProfile

# gen_ai.provider.name of each preset whose provider is known (aider talks to whatever
# model it is given: no provider named).
PROVIDERS = {"claude-code": "anthropic", "codex": "openai", "gemini": "gcp.gemini"}
AI_PRESETS = frozenset({*PROVIDERS, "aider"})

# what a task_usage event carries -> the attribute it becomes
USAGE_ATTRS = {
    "model": "gen_ai.response.model",
    "tokens_in": "gen_ai.usage.input_tokens",
    "tokens_out": "gen_ai.usage.output_tokens",
    "tokens_cache": "conductor.usage.cache_tokens",
    "turns": "conductor.usage.turns",
    "cost_usd": "conductor.cost_usd",
}


def invoke_agent(profile: AgentProfile | None, name: str,
                 attrs: MutableMapping[str, Any]) -> str | None:  # fmt: skip
    """Add the GenAI attributes of an agent's phase; its span name, or None when the
    profile is no AI agent (a shell command, a custom one)."""
    if profile is None or profile.kind not in AI_PRESETS:
        return None
    attrs.update({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name})
    if profile.kind in PROVIDERS:
        attrs["gen_ai.provider.name"] = PROVIDERS[profile.kind]
    if profile.model:
        attrs["gen_ai.request.model"] = profile.model
    return f"invoke_agent {name}"


def usage_attrs(usage: Mapping[str, Any], text: Callable[[Any], str]) -> dict[str, Any]:
    """A `task_usage` event's fields as span attributes (a custom command that reports
    usage is an agent invocation too)."""
    out: dict[str, Any] = {"gen_ai.operation.name": "invoke_agent"}
    for key, attr in USAGE_ATTRS.items():
        value = usage.get(key)
        if value is not None:
            out[attr] = text(value) if isinstance(value, str) else value
    return out
