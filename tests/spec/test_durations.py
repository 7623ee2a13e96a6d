"""Durations: what users write in workflow files, and how conductor prints them back."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conductor.spec.durations import format_duration, parse_duration
from conductor.spec.schema import load_schema


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("20m", 1200),
        ("4h", 14400),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1d2h3m4s", 93784),
        ("0s", 0),
        ("45", 45),
        (120, 120),
        (0, 0),
    ],
)
def test_parse(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1.5h", "no fractions"),
        ("5 minutes", "unknown unit `minutes`"),
        ("4x", "unknown unit `x`"),
        ("30m1h", "largest to smallest"),
        ("1h1h", "largest to smallest"),
        ("4 h", "no spaces"),
        ("", "is not a duration"),
        ("h", "is not a duration"),
        ("-5m", "is not a duration"),
    ],
)
def test_parse_rejects_with_a_reason(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_duration(text)


def test_parse_rejects_non_strings() -> None:
    for bad in (-1, True, 1.5, None, ["1h"]):
        with pytest.raises(ValueError):
            parse_duration(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (60, "1m"), (5400, "1h30m"), (90061, "1d1h1m1s"), (59.6, "1m")],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**8))
def test_format_then_parse_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text(alphabet="0123456789dhms .x-\n", max_size=10))
def test_schema_pattern_accepts_exactly_what_the_parser_accepts(text: str) -> None:
    # The schema rejects a duration before the parser sees it, so they must agree.
    pattern = load_schema()["$defs"]["duration"]["pattern"]
    try:
        parse_duration(text)
        parses = True
    except ValueError:
        parses = False
    assert (re.search(pattern, text) is not None) == parses
