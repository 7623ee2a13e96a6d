"""Did-you-mean hints for typos in names (keys, task ids, agents, groups)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word``, or None when nothing is reasonably close.

    Only called on the error path, so scanning every candidate is fine.
    """
    pool = list(candidates)
    lowered = {c.lower(): c for c in pool}
    if word.lower() in lowered:  # a case slip is the likeliest typo of all
        return lowered[word.lower()]
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """``did you mean `x`?`` for the closest candidate, or None."""
    match = closest(word, candidates)
    return f"did you mean `{match}`?" if match is not None else None
