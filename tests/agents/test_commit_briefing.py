"""Agents whose own sandbox cannot commit are told that conductor commits for them (issue
11): Codex in its workspace-write (or read-only) sandbox, Gemini CLI with --sandbox; the
others, and Codex given full access, may commit. And every agent is told how to report
progress where `conductor` is not on PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor.agents import profiles as agents
from conductor.agents.briefing import COMMITS_YOURSELF, COMMITTED_FOR_YOU
from conductor.agents.presets import can_commit
from conductor.agents.profiles import InstructionContext
from conductor.spec.model import AgentProfile, Task
from tests.testing.harness import launch, workflow


def briefing(tmp_path: Path, profile: AgentProfile) -> tuple[str, list[str]]:
    task = Task(id="T1", agent=profile.name, prompt="do it")
    wf = workflow(tmp_path, task)
    wf.agents[profile.name] = profile
    ctx = InstructionContext(run_id="r", attempt=1, worktree=tmp_path / "wt", upstream=[])
    (tmp_path / "wt").mkdir(exist_ok=True)
    return agents.instructions(wf, task, ctx), launch(wf, task, tmp_path / "wt").argv


@pytest.mark.parametrize(
    ("preset", "args", "commits", "sandbox_flags"),
    [
        ("codex", (), False, ["-s", "workspace-write"]),
        ("codex", ("-s", "read-only"), False, ["-s", "read-only"]),
        ("codex", ("--sandbox=danger-full-access",), True, ["--sandbox=danger-full-access"]),
        ("codex", ("-s", "danger-full-access"), True, ["-s", "danger-full-access"]),
        ("codex", ("--dangerously-bypass-approvals-and-sandbox",), True,
         ["--dangerously-bypass-approvals-and-sandbox"]),
        ("codex", ("-c", "sandbox_mode=danger-full-access"), True, []),
        ("codex", ("-c", 'sandbox_mode="workspace-write"'), False, []),
        ("claude-code", (), True, None),
        ("gemini", (), True, None),
        ("gemini", ("--sandbox",), False, None),
        ("aider", (), True, None),
    ],
)  # fmt: skip
def test_the_briefing_says_who_commits(
    tmp_path: Path, preset: str, args: tuple[str, ...], commits: bool,
    sandbox_flags: list[str] | None,
) -> None:  # fmt: skip
    profile = AgentProfile(name="agent", preset=preset, args=args)
    assert can_commit(profile) is commits
    text, argv = briefing(tmp_path, profile)
    assert (COMMITS_YOURSELF in text, COMMITTED_FOR_YOU in text) == (commits, not commits)
    if not commits:
        assert "Do not run `git commit` or `git add`" in text and "You may commit" not in text
    if sandbox_flags is not None:  # one sandbox choice reaches codex: clap refuses two `-s`
        chosen = [i for i, a in enumerate(argv) if a in ("-s", "--sandbox")
                  or a.startswith(("--sandbox=", "--dangerously"))]  # fmt: skip
        assert len(chosen) == (1 if sandbox_flags else 0)
        assert [argv[i : i + len(sandbox_flags)] for i in chosen] in ([sandbox_flags], [])


def test_a_gemini_sandbox_set_through_the_environment_counts(tmp_path: Path) -> None:
    assert not can_commit(AgentProfile(name="g", preset="gemini", env={"GEMINI_SANDBOX": "docker"}))
    assert can_commit(AgentProfile(name="g", preset="gemini", env={"GEMINI_SANDBOX": "false"}))


def test_every_agent_learns_the_absolute_way_to_report_progress(tmp_path: Path) -> None:
    text, _ = briefing(tmp_path, AgentProfile(name="agent", preset="codex"))
    assert "`conductor progress PERCENT MESSAGE`" in text
    assert '`"$CONDUCTOR_BIN" progress 50 "tests pass"`' in text
