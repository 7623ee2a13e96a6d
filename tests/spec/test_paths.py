"""The path rule behind the refusals of tests/bad/*: what may and may not be declared."""

from __future__ import annotations

import pytest

from conductor.spec.paths import path_problem

INSIDE = [
    "build/out.txt",
    "./a.txt",
    "a/../b.txt",  # climbs back into the worktree
    "**/*.py",
    "src/*/gen.c",
    "src/*/../x.c",  # `*` is one directory down, `..` comes back up
    ".env",
    ".gitignore",
    ".github/workflows/ci.yml",
    "docs/.gitkeep",
    "a//b",
]
OUTSIDE = [
    ("/tmp/out.txt", "is an absolute path"),
    ("/", "is an absolute path"),
    ("..", "leads outside"),
    ("../x", "leads outside"),
    ("a/../../x", "leads outside"),
    ("./../x", "leads outside"),
    ("*/../../x", "leads outside"),  # glob expands `..` after a wildcard too
    ("**/../x", "leads outside"),  # `**` may match no directory at all
    (".git", "is inside `.git`"),
    (".git/HEAD", "is inside `.git`"),
    ("sub/.git/config", "is inside `.git`"),
    (".GIT/config", "is inside `.git`"),  # case-insensitive file systems
]


@pytest.mark.parametrize("path", INSIDE)
def test_paths_inside_the_worktree_are_accepted(path: str) -> None:
    assert path_problem(path) is None


@pytest.mark.parametrize(("path", "why"), OUTSIDE)
def test_paths_that_could_leave_it_are_refused(path: str, why: str) -> None:
    problem = path_problem(path)
    assert problem is not None and why in problem and f"`{path}`" in problem


def test_the_message_names_what_is_left() -> None:
    assert path_problem("../x", "the repository") == (
        "`../x` leads outside the repository (through `..`)"
    )
