"""Helpers to launch tasks through conductor.agents.profiles in a temp repo, with the fakes on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conductor.agents import profiles as agents
from conductor.agents.profiles import AgentReport, InstructionContext, Launch
from conductor.spec.model import AgentProfile, Task, Workflow
from conductor.spec.secrets import Secrets
from tests.testing.paths import FAKES

PROFILES = {
    "claude": AgentProfile(name="claude", preset="claude-code", model="sonnet"),
    "codex": AgentProfile(name="codex", preset="codex"),
    "gemini": AgentProfile(name="gemini", preset="gemini"),
    "aider": AgentProfile(name="aider", preset="aider"),
    "sh": AgentProfile(name="sh", preset="shell"),
}


def fake_path(base: str | None = None) -> str:
    """The fakes first, then this interpreter's directory: `python3` there starts in ~15 ms,
    where a pyenv shim costs ~150 ms per fake process."""
    rest = base if base is not None else os.environ.get("PATH", "")
    return os.pathsep.join([str(FAKES), str(Path(sys.executable).parent), rest])


def fake_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": fake_path(), **extra}


def workflow(root: Path, *tasks: Task, agents_: dict[str, AgentProfile] | None = None) -> Workflow:
    return Workflow(
        path=root / "wf.yaml",
        name="demo",
        integration_branch="conductor/demo",
        tasks={t.id: t for t in tasks},
        agents=dict(PROFILES if agents_ is None else agents_),
    )


def launch(
    wf: Workflow,
    task: Task,
    worktree: Path,
    *,
    attempt: int = 1,
    resume: str | None = None,
    base_env: dict[str, str] | None = None,
    secrets: Secrets | None = None,
    ctx: InstructionContext | None = None,
) -> Launch:
    """Write the instructions file beside the worktree (as the engine does) and build."""
    ctx = ctx or InstructionContext(run_id="run1", attempt=attempt, worktree=worktree, upstream=[])
    prompt = worktree.parent / "prompts" / f"{task.id}-{attempt}.md"
    prompt.parent.mkdir(parents=True, exist_ok=True)
    prompt.write_text(agents.instructions(wf, task, ctx))
    return agents.build_launch(
        wf,
        task,
        worktree=worktree,
        instructions_file=prompt,
        run_id="run1",
        attempt=attempt,
        port=4123,
        secrets=secrets or Secrets(),
        base_env=base_env if base_env is not None else fake_env(),
        resume_session=resume,
    )


def run(launch_: Launch, timeout: float = 20) -> tuple[int, AgentReport, list[str], str]:
    """Run to completion, feeding stdout to the launch's parser like the executor does."""
    proc = subprocess.run(
        launch_.argv,
        cwd=launch_.cwd,
        env=launch_.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    steps = [s for line in proc.stdout.splitlines() if (s := launch_.parser.feed(line))]
    return proc.returncode, launch_.parser.result(), steps, proc.stderr
