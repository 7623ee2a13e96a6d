"""Aider's plain-text output -> model, tokens, cost and turns (and its rate limits).

As printed by aider 0.86 (Aider-AI/aider aider/coders/base_coder.py: get_announcements,
calculate_and_show_tokens_and_cost; aider/utils.py format_tokens):

* at startup `Model: NAME with whole edit format, ...` (`Main model: NAME ...` when a
  weak model is set; `Weak model:` and `Editor model:` lines follow and are not it);
* after every model reply `Tokens: 2.3k sent, 1.2k cache write, 3.4k cache hit, 145
  received.` (the cache parts only when non-zero; counts under 1000 exact, then `1.2k`
  under 10k and `12k` above, so recorded tokens are as rounded as aider's), then, for a
  priced model, `Cost: $0.0012 message, $0.0034 session.` on the same line (or on the
  next one when both cache parts are shown). `sent` is the reply's whole input, the cached
  tokens included (litellm's prompt_tokens counts them).
"""

from __future__ import annotations

import re

from conductor.agents.parsers import OutputParser, _note_limit

_AIDER_MODEL = re.compile(r"^(?:Main model|Model): (\S+)")
_AIDER_TOKENS = re.compile(r"^Tokens: (.+?)\.?$")
_AIDER_PART = re.compile(r"^([\d.,]+)\s*([kKmM]?) (sent|cache write|cache hit|received)$")
_AIDER_COST = re.compile(r"Cost: \$([\d.]+) message, \$([\d.]+) session")
_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000}


def _aider_count(number: str, suffix: str) -> int:
    """`2.3k` -> 2300, `1,234` -> 1234: aider rounds to 0.1k under 10k, to 1k above."""
    return round(float(number.replace(",", "")) * _SUFFIX[suffix.lower()])


class AiderParser(OutputParser):
    """Aider prints plain text: its model, usage lines and provider errors are recognised.

    Each model reply prints its own Tokens line and (for a priced model) a Cost line with
    the reply's cost and the session's. The attempt's figures are the replies' own, summed:
    the session figure is a running total whose scope is aider's (it is carried from coder
    to coder, e.g. architect to editor, and would count a restored session's earlier
    spending if aider ever kept it), while each message figure is exactly one reply of
    this process. Summing them counts every reply once, and a run cut short still has
    every reply it printed. A Tokens line is one reply: one turn.
    """

    def _line(self, line: str) -> str | None:
        text, r = line.strip(), self.report
        if "RateLimitError" in text:
            _note_limit(r, text)
        if r.model is None and (m := _AIDER_MODEL.match(text)):
            r.model = m.group(1)
        if m := _AIDER_TOKENS.match(text):
            self._tokens(m.group(1).split(". Cost:")[0])
        if m := _AIDER_COST.search(text):
            r.cost_usd = (r.cost_usd or 0.0) + float(m.group(1))
        return None

    def _tokens(self, parts: str) -> None:
        counts: dict[str, int] = {}
        for part in parts.rstrip(".").split(", "):
            if m := _AIDER_PART.match(part.strip()):
                counts[m.group(3)] = _aider_count(m.group(1), m.group(2))
        if "sent" not in counts:
            return  # not aider's usage line
        r = self.report
        r.tokens_in = (r.tokens_in or 0) + counts["sent"]
        r.tokens_out = (r.tokens_out or 0) + counts.get("received", 0)
        cached = counts.get("cache write", 0) + counts.get("cache hit", 0)
        r.tokens_cache = (r.tokens_cache or 0) + cached
        r.turns = (r.turns or 0) + 1
