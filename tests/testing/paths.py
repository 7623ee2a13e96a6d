"""Where the tests' data lives."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
FAKES = TESTS / "fakes"  # fake agent CLIs with the real ones' flags and output formats
BAD = TESTS / "bad"  # the bad-input corpus
GOOD = TESTS / "good"
SNAPSHOTS = TESTS / "snapshots"
WORKFLOWS = ROOT / "workflows"
