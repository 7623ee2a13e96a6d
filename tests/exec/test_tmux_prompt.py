"""A tmux prompt pattern matches the pane as a person sees it, and one that never shows
is reported at half the timeout with the pane's last lines."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from conductor.exec import panes
from conductor.exec.tmux import TmuxExecutor, pane_pattern
from tests.exec.test_tmux import AGENT, FAST, SOCKET, agent_env
from tests.testing.requests import request

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@pytest.fixture(scope="module", autouse=True)
def _server() -> object:
    yield None
    panes.tmux(SOCKET, "kill-server")


@pytest.mark.parametrize(
    ("written", "line"),
    [("^agent> $", "agent>"), (r"^agent>\s*$", "agent>"), ("agent> ", "agent>"),
     (r"^x\ $", "x"), ("^a>  +$", "a>"), (r"a[ ]$", "a")],
)
def test_trailing_whitespace_is_ignored_on_both_sides(written: str, line: str) -> None:
    assert pane_pattern(written).search(line)


def test_other_patterns_are_kept_as_written() -> None:
    assert pane_pattern(r"^a$").pattern == r"^a$"
    assert pane_pattern(r"a\\ $").pattern == r"a\\$"  # an escaped backslash, then a space


def _run(tmp: Path, ex: TmuxExecutor, timeout: float) -> object:
    argv = [sys.executable, str(AGENT), "--prompt", "agent> "]
    req = request(argv, tmp, env=agent_env(), log_path=tmp / "agent.log", timeout_s=timeout)
    return ex.run(req)


@pytest.mark.slow
@needs_tmux
def test_a_prompt_written_with_its_trailing_space_matches(tmp_path: Path) -> None:
    ex = TmuxExecutor("hello.txt hi", "prompt", "^agent> $", socket=SOCKET, **FAST)
    res = _run(tmp_path, ex, 15.0)
    assert res.ok, res  # type: ignore[attr-defined]
    assert (tmp_path / "hello.txt").read_text() == "hi\n"


@pytest.mark.slow
@needs_tmux
def test_a_prompt_that_never_shows_warns_at_half_the_timeout(tmp_path: Path) -> None:
    said: list[str] = []
    ex = TmuxExecutor("x", "prompt", "^ready>$", socket=SOCKET, warn=said.append, **FAST)
    res = _run(tmp_path, ex, 3.0)
    assert res.reason == "timeout"  # type: ignore[attr-defined]
    assert len(said) == 1, said
    assert "prompt_pattern '^ready>$' has not matched before typing the prompt" in said[0]
    assert "half the timeout" in said[0]
    assert "fake interactive agent | agent>" in said[0]  # the pane's last lines
    assert "has not matched" in (tmp_path / "agent.log").read_text()
