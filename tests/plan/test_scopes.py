"""File scopes: which paths a `touches` list covers, and which scopes may share a file."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conductor.plan.scopes import glob_to_regex, matches, outside, overlap


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # a directory and everything under it, however it is written
        ("db", "db", True),
        ("db", "db/x/y.sql", True),
        ("db/", "db/x/y.sql", True),
        ("db/**", "db/x/y.sql", True),
        ("db", "dbx/y.sql", False),
        ("db", "src/db/y.sql", False),  # anchored at the repository root
        ("./db", "db/a", True),
        ("/db", "db/a", True),
        # * stays within one segment
        ("src/*.py", "src/a.py", True),
        ("src/*.py", "src/sub/a.py", False),
        ("src/*.py", "src/a.txt", False),
        ("*.md", "README.md", True),
        ("*.md", "docs/a.md", False),
        # ** spans any number of directories, including none
        ("**/*.py", "a.py", True),
        ("**/*.py", "x/y/z/a.py", True),
        ("src/**/test_*.py", "src/test_a.py", True),
        ("src/**/test_*.py", "src/a/b/test_a.py", True),
        ("src/**/test_*.py", "src/a/b/a.py", False),
        ("**", "anything/at/all", True),
        ("", "anything", True),
        # ? and character classes
        ("f?.txt", "f1.txt", True),
        ("f?.txt", "f12.txt", False),
        ("f?.txt", "f/.txt", False),
        ("[ab].txt", "a.txt", True),
        ("[ab].txt", "c.txt", False),
        ("[!ab].txt", "c.txt", True),
        ("[!ab].txt", "a.txt", False),
        ("[a-c]x", "bx", True),
        ("[unclosed", "[unclosed", True),
        # regex metacharacters are literal
        ("a+b(c).txt", "a+b(c).txt", True),
        ("a.txt", "abtxt", False),
        (r"\*.txt", "*.txt", True),
        (r"\*.txt", "a.txt", False),
    ],
)
def test_glob_to_regex(pattern: str, path: str, expected: bool) -> None:
    assert (glob_to_regex(pattern).match(path) is not None) is expected


def test_patterns_are_compiled_once() -> None:
    assert glob_to_regex("src/**/*.py") is glob_to_regex("src/**/*.py")


def test_matches_and_outside_report_paths_not_covered() -> None:
    scope = ["db/**", "tests/db/*.py"]
    assert matches("db/schema.sql", scope)
    assert matches("./db/schema.sql", scope)
    assert not matches("src/app.py", scope)
    changed = ["db/schema.sql", "src/app.py", "tests/db/test_x.py", "tests/db/sub/t.py"]
    assert outside(changed, scope) == ["src/app.py", "tests/db/sub/t.py"]


def test_empty_scope_covers_nothing_and_restricts_nothing() -> None:
    assert not matches("a", [])
    assert outside(["a", "b/c"], []) == []


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (["db/**"], ["db/schema.sql"], True),
        (["db"], ["db/x/y"], True),
        (["db/"], ["db/**"], True),
        (["db/**"], ["src/**"], False),
        (["db"], ["dbx"], False),
        (["src/a.py"], ["src/a.py"], True),
        (["src/a.py"], ["src/b.py"], False),
        (["src/*.py"], ["src/a.txt"], False),
        (["src/*.py"], ["src/a.py"], True),
        (["src/*.py"], ["src"], True),
        (["src/*/b.py"], ["src/a"], True),  # src/a/b.py is in both
        (["src/*/b.py"], ["src/a/c.py"], False),
        (["src/*.py"], ["src/*.ts"], False),  # literal suffixes differ
        (["src/a*"], ["src/b*"], False),  # literal prefixes differ
        (["src/*.py"], ["src/test_*"], True),  # src/test_a.py
        (["**/*.py"], ["docs/readme.md"], True),  # undecidable cheaply: assume overlap
        (["src/**"], ["**/x"], True),
        (["a/**/x"], ["b/**/x"], False),  # fixed first segment differs
        (["**"], ["anything"], True),
        ([], ["db/**"], False),  # no declared scope: never serialized
        (["db/**"], [], False),
        ([], [], False),
        (["src/**", "db/**"], ["lib/**", "db/x"], True),
        (["src/**", "db/**"], ["lib/**", "docs/x"], False),
    ],
)
def test_overlap(a: list[str], b: list[str], expected: bool) -> None:
    assert overlap(a, b) is expected
    assert overlap(b, a) is expected


# Property: overlap() may say "maybe" when scopes are disjoint, never "no" when they share.
_SEG_PATTERNS = ["a", "b", "ab", "a.py", "*", "**", "a*", "*.py", "*b", "?", "[ab]", "[!a]*"]
_SEG_TEXTS = ["a", "b", "ab", "ba", "a.py", "b.py", "c", "x"]

_patterns = st.lists(st.sampled_from(_SEG_PATTERNS), min_size=1, max_size=4).map("/".join)
_scopes = st.lists(_patterns, min_size=1, max_size=3)
_texts = st.sampled_from(_SEG_TEXTS)


@st.composite
def _instance(draw: st.DrawFn, pattern: str) -> str:
    """A path the pattern covers, often: wildcards filled with text that fits or nearly fits."""
    segs: list[str] = []
    for seg in pattern.split("/"):
        if seg == "**":
            segs += draw(st.lists(_texts, max_size=3))
        elif any(c in seg for c in "*?["):
            segs.append(draw(_texts))
        else:
            segs.append(seg)
    segs += draw(st.lists(_texts, max_size=2))  # anything under a match is covered too
    return "/".join(segs)


@settings(max_examples=500, deadline=None)
@given(a=_scopes, b=_scopes, data=st.data())
def test_disjoint_scopes_share_no_path(a: list[str], b: list[str], data: st.DataObject) -> None:
    if overlap(a, b):
        return
    for pattern in a + b:
        for _ in range(5):
            path = data.draw(_instance(pattern))
            assert not (matches(path, a) and matches(path, b)), path


@settings(max_examples=200, deadline=None)
@given(pattern=_patterns, data=st.data())
def test_a_pattern_covers_everything_under_what_it_matches(
    pattern: str, data: st.DataObject
) -> None:
    path = data.draw(_instance(pattern))
    if matches(path, [pattern]):
        assert matches(path + "/deeper/file", [pattern])


@st.composite
def _generalize(draw: st.DrawFn, path: str) -> str:
    """A pattern that certainly covers ``path``: segments widened to wildcards, runs of them
    folded into ``**``, and a tail dropped (a pattern covers everything under its match)."""
    segs = path.split("/")
    segs = segs[: draw(st.integers(1, len(segs)))]
    out: list[str] = []
    i = 0
    while i < len(segs):
        if draw(st.integers(0, 4)) == 4 and out[-1:] != ["**"]:  # fold 0..2 segments into **
            i += draw(st.integers(0, min(2, len(segs) - i)))
            out.append("**")
            continue
        t = segs[i]
        out.append(draw(st.sampled_from([t, "*", "?" * len(t), t[0] + "*", "*" + t[-1]])))
        i += 1
    return "/".join(out)


@settings(max_examples=500, deadline=None)
@given(path=st.lists(_texts, min_size=1, max_size=5).map("/".join), data=st.data())
def test_scopes_sharing_a_path_overlap(path: str, data: st.DataObject) -> None:
    a, b = data.draw(_generalize(path)), data.draw(_generalize(path))
    assert matches(path, [a]) and matches(path, [b])
    assert overlap([a], [b]), (a, b, path)
