"""File scopes: the `touches` globs of a task, matched against repository paths.

A scope is a list of gitignore-ish patterns, anchored at the repository root:

* ``*`` matches within one path segment, ``?`` one character, ``[abc]`` / ``[!abc]`` a class;
* ``**`` as a whole segment matches any number of directories (``**/x``, ``a/**/b``);
* a pattern also covers everything *under* what it matches, so ``db``, ``db/`` and ``db/**``
  all cover ``db/x/y`` (a directory and its contents are one unit of ownership);
* a pattern without a slash is *not* matched at every depth (unlike .gitignore): write
  ``**/*.py`` for Python files anywhere. Anchoring keeps scopes explicit and lets
  :func:`overlap` decide disjointness from literal prefixes;
* an empty pattern, ``/`` or ``**`` covers the whole repository.

An empty scope (no patterns) means "no declared scope": it restricts nothing, :func:`outside`
reports nothing for it, and :func:`overlap` says it shares nothing, so tasks without
``touches`` are never serialized against each other. Declaring scopes is how a workflow asks
for serialization; guessing one for undeclared tasks would serialize every agent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["glob_to_regex", "matches", "outside", "overlap"]


@dataclass(frozen=True)
class _Segment:
    """One path segment of a pattern, analysed once for matching and for disjointness."""

    regex: str  # matches exactly one segment's text (no slash)
    literal: bool  # no wildcard: the segment is the text itself
    prefix: str  # literal text every match starts with
    suffix: str  # literal text every match ends with
    text: str  # the literal text when ``literal``


def _split_class(seg: str, i: int) -> tuple[str, int] | None:
    """The regex for a ``[...]`` class starting at ``seg[i]`` and the index after it.

    None when the bracket is not closed, so it is taken literally (as fnmatch does).
    """
    j = i + 1
    negate = j < len(seg) and seg[j] in "!^"
    if negate:
        j += 1
    start = j
    if j < len(seg) and seg[j] == "]":  # a leading ] is a member, not the end
        j += 1
    while j < len(seg) and seg[j] != "]":
        j += 1
    if j >= len(seg):
        return None
    body = "".join("\\" + c if c in "\\^[]" else c for c in seg[start:j])
    # A class never matches "/": segments are split on it, and a negated class must not
    # let a match leak into the next directory.
    return ("[^/" + body + "]" if negate else "[" + body + "]"), j + 1


def _tokens(seg: str) -> list[tuple[str, str]]:
    """``seg`` as (kind, regex) tokens; kind is "lit" (regex = the raw char) or "wild"."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(seg):
        c = seg[i]
        if c == "\\" and i + 1 < len(seg):  # \* is a literal star
            out.append(("lit", seg[i + 1]))
            i += 2
            continue
        if c == "*":
            if not (out and out[-1] == ("wild", "[^/]*")):  # ** inside a segment is *
                out.append(("wild", "[^/]*"))
        elif c == "?":
            out.append(("wild", "[^/]"))
        elif c == "[" and (cls := _split_class(seg, i)) is not None:
            out.append(("wild", cls[0]))
            i = cls[1]
            continue
        else:
            out.append(("lit", c))
        i += 1
    return out


@lru_cache(maxsize=4096)
def _segment(seg: str) -> _Segment:
    toks = _tokens(seg)
    regex = "".join(re.escape(t) if kind == "lit" else t for kind, t in toks)
    lits = [kind == "lit" for kind, _ in toks]
    n_pre = lits.index(False) if False in lits else len(toks)
    n_suf = lits[::-1].index(False) if False in lits else len(toks)
    prefix = "".join(t for _, t in toks[:n_pre])
    suffix = "".join(t for _, t in toks[len(toks) - n_suf :])
    literal = all(lits)
    return _Segment(regex, literal, prefix, suffix, prefix if literal else "")


@lru_cache(maxsize=4096)
def _segments(pattern: str) -> tuple[str, ...]:
    """The pattern's segments, normalized: no empty or ``.`` segments, no repeated or
    trailing ``**`` (a pattern covers everything under its match anyway)."""
    segs: list[str] = []
    for seg in pattern.strip().split("/"):
        if seg in ("", ".") or (seg == "**" and segs and segs[-1] == "**"):
            continue
        segs.append(seg)
    while segs and segs[-1] == "**":
        segs.pop()
    return tuple(segs)


@lru_cache(maxsize=4096)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """A compiled regex matching every repository path ``pattern`` covers (use ``match``)."""
    segs = _segments(pattern)
    if not segs:
        return re.compile(r"(?s:.*)\Z")
    parts: list[str] = []
    for i, seg in enumerate(segs):
        if seg == "**":  # never last: _segments strips a trailing **
            parts.append("(?:[^/]+/)*")
        else:
            parts.append(_segment(seg).regex + ("/" if i < len(segs) - 1 else ""))
    return re.compile("(?s:" + "".join(parts) + r"(?:/.*)?)\Z")


@lru_cache(maxsize=1024)
def _combined(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for a whole scope, so checking many paths costs one match each."""
    return re.compile("|".join(f"(?:{glob_to_regex(p).pattern})" for p in patterns))


def _norm_path(path: str) -> str:
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/")


def matches(path: str, patterns: Sequence[str]) -> bool:
    """True when some pattern covers ``path`` (False for an empty pattern list)."""
    if not patterns:
        return False
    return _combined(tuple(patterns)).match(_norm_path(path)) is not None


def outside(paths: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The paths no pattern covers, in input order; none when the scope is empty."""
    if not patterns:
        return []
    rx = _combined(tuple(patterns))
    return [p for p in paths if rx.match(_norm_path(p)) is None]


def _disjoint_segments(a: str, b: str) -> bool:
    """True only when no single segment text can match both ``a`` and ``b``."""
    if a == b:
        return False
    sa, sb = _segment(a), _segment(b)
    if sa.literal and sb.literal:
        return True
    if sa.literal or sb.literal:
        lit, wild = (sa, sb) if sa.literal else (sb, sa)
        return re.fullmatch(wild.regex, lit.text) is None
    # Two wildcards: every match starts with the prefix and ends with the suffix, so
    # incompatible literal ends prove disjointness; anything subtler is assumed to overlap.
    pre_ok = sa.prefix.startswith(sb.prefix) or sb.prefix.startswith(sa.prefix)
    suf_ok = sa.suffix.endswith(sb.suffix) or sb.suffix.endswith(sa.suffix)
    return not (pre_ok and suf_ok)


def _fixed(segs: tuple[str, ...]) -> int:
    """How many leading segments sit at a fixed depth (those before the first ``**``)."""
    return segs.index("**") if "**" in segs else len(segs)


@lru_cache(maxsize=8192)
def _pair_overlap(a: str, b: str) -> bool:
    sa, sb = _segments(a), _segments(b)
    # A path covered by both matches a[i] and b[i] at every fixed depth i both patterns
    # pin down; one provably disjoint depth rules out any shared path. Beyond that (after
    # a `**`, or below the shorter pattern) anything may follow, so we assume overlap.
    return not any(_disjoint_segments(sa[i], sb[i]) for i in range(min(_fixed(sa), _fixed(sb))))


def overlap(a: Sequence[str], b: Sequence[str]) -> bool:
    """Could scopes ``a`` and ``b`` share a file? Conservative: True unless provably not.

    An empty scope declares nothing and overlaps nothing (see the module docstring).
    """
    if not a or not b:
        return False
    return any(_pair_overlap(pa, pb) for pa in a for pb in b)
