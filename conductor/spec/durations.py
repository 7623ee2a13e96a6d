"""Durations as written in workflow files (``90s``, ``20m``, ``4h``, ``1h30m``, ``2d``).

Kept dependency-free: the schema, the planner and the console all format or parse them.
"""

from __future__ import annotations

import functools
import re

# The units in the order they must appear; the schema's duration pattern mirrors this.
_UNITS: dict[str, int] = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# Same language as the schema's pattern (which jsonschema applies with re.search), so a
# value the schema accepts always parses: [0-9] rather than \d (which admits other scripts'
# digits that int() rejects), and a `$` that, like the schema's, tolerates one final newline.
_DURATION = re.compile(
    r"^(?:([0-9]+)|(?=[0-9])(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?)$"
)
EXAMPLES = "90s, 20m, 4h, 1h30m or 2d"


def parse_duration(text: str | int) -> float:
    """Seconds in ``text``: a unit string like ``1h30m`` or a plain number of seconds.

    Raises ValueError with a message a user can act on.
    """
    if isinstance(text, bool):  # bool is an int subclass; `timeout: yes` is not a duration
        raise ValueError(f"{text!r} is not a duration: use {EXAMPLES}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"duration {text} is negative")
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration: use {EXAMPLES}")
    return _parse_text(text)


@functools.lru_cache(maxsize=256)  # a big workflow repeats the same few values
def _parse_text(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use {EXAMPLES}{_why(text.strip())}")
    plain, *units = match.groups()
    if plain is not None:
        return float(int(plain))
    return float(sum(int(n) * f for n, f in zip(units, _UNITS.values(), strict=True) if n))


def _why(text: str) -> str:
    """A specific reason for the common mistakes, appended to the generic message."""
    if re.search(r"\d\.\d", text):
        return " (no fractions: write 1h30m, not 1.5h)"
    units = re.findall(r"[a-zA-Z]+", text)
    unknown = [u for u in units if u not in _UNITS]
    if unknown:
        return f" (unknown unit `{unknown[0]}`; units are d, h, m, s)"
    if " " in text:
        return " (no spaces)"
    if units != sorted(units, key=list(_UNITS).index) or len(set(units)) < len(units):
        return " (units go from largest to smallest, each once)"
    return ""


def format_duration(seconds: float) -> str:
    """``5400`` → ``1h30m``; ``45`` → ``45s``; ``0`` → ``0s``. Rounds to whole seconds."""
    remaining = round(seconds)
    if remaining <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNITS.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
