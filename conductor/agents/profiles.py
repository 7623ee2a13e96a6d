"""Agent profiles: a task -> argv, env, cwd and an instructions file (DESIGN §7).

The entry points of the agents room: which profile a task runs with (``profile_for``),
how its agent is started (``build_launch``: argv from ``presets``, the environment here),
its instructions file (``instructions``, from the sections in ``briefing``) and the
fingerprint that says whether finished work is still current. Output parsing lives in
`conductor.agents.parsers`; its AgentReport and OutputParser are re-exported here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from conductor.agents.briefing import (
    _bullets,
    _checks_section,
    _code,
    _context_sections,
    _protocol,
    _task_text,
)
from conductor.agents.parsers import AgentReport, OutputParser, make_parser
from conductor.agents.presets import _EXECUTABLES, _argv, can_commit
from conductor.errors import UserError
from conductor.git.env import clean_env
from conductor.spec.model import AgentProfile, Task, Workflow
from conductor.spec.secrets import Secrets

__all__ = [
    "AgentReport",
    "InstructionContext",
    "Launch",
    "OutputParser",
    "build_launch",
    "executable",
    "instructions",
    "spec_fingerprint",
]

# CLAUDECODE trips Claude's nested-session guard when conductor runs inside Claude Code.
_STRIPPED_ENV = ("CLAUDECODE",)
# Fields that only schedule a task; changing them must not make finished work stale.
_SCHEDULING_FIELDS = frozenset(
    [
        "loc",
        "priority",
        "estimate_s",
        "timeout_s",
        "idle_timeout_s",
        "max_parallel",  # how many expansions run at once, not what each makes
        "retries",
        "budget_usd",
        "when",  # whether it runs, not what it makes
        "trigger",
        "on_conflict",
        "approve",  # a person looks before the merge: the work itself is the same
        "sandbox",  # how the agent is confined, not what it is asked to make
    ]
)


# ------------------------------------------------------------------------------ instructions


@dataclass
class InstructionContext:
    run_id: str
    attempt: int
    worktree: Path
    upstream: list[tuple[str, str, str]]  # (task id, title, summary of what it changed)
    previous_failure: str | None = None
    conflict: str | None = None
    feedback: str | None = None  # a reviewer's `conductor reject --message`
    # task id -> the values it wrote to $CONDUCTOR_OUTPUT, for tasks this one depends on
    values: dict[str, dict[str, str]] = field(default_factory=dict)


def instructions(wf: Workflow, task: Task, ctx: InstructionContext) -> str:
    """The instructions file, as markdown."""
    parts = [f"# Task {task.id}" + (f": {task.title}" if task.title else "")]
    if task.role:
        parts.append(f"You are a {task.role}.")
    parts.append(f"Workflow `{wf.name}`, run `{ctx.run_id}`, attempt {ctx.attempt}.")
    parts += ["## What to do", _task_text(wf, task)]
    if task.inputs:
        parts += ["## Inputs", "Read these first:", _bullets([_code(p) for p in task.inputs])]
    if task.outputs:
        parts += [
            "## Required outputs",
            "These paths must exist when you finish:",
            _bullets([_code(p) for p in task.outputs]),
        ]
    parts += _checks_section(wf, task) + _context_sections(task, ctx)
    parts += _protocol(wf, task, ctx, _agent_commits(wf, task))
    parts += [SANDBOXED] if task.sandbox is not None else []
    return "\n\n".join(parts) + "\n"


SANDBOXED = ("## Your sandbox\n\nYou run confined: only this worktree, /tmp and your own "
             "state directory are writable; the rest of the system, the repository's main "
             "checkout, `.git` and other worktrees are read-only, credential directories are "
             "unreadable, and the network reaches only what this task allows. A refusal shows "
             "as `Read-only file system`, `Permission denied` or a refused connection: do not "
             "try to get around it, work inside the worktree.")  # fmt: skip


def _agent_commits(wf: Workflow, task: Task) -> bool:
    """Can the task's agent commit from inside its own sandbox (see presets.can_commit)?
    Not inside conductor's (`sandbox:`): `.git` is read-only there, conductor commits."""
    if task.sandbox is not None:
        return False
    try:
        return can_commit(profile_for(wf, task))
    except UserError:  # an unknown profile: build_launch reports it
        return True


# ------------------------------------------------------------------------------------ launch


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]  # the full environment of the agent process
    cwd: Path
    parser: OutputParser


_IMPLICIT = {
    "claude": "claude-code",
    "codex": "codex",
    "aider": "aider",
    "gemini": "gemini",
    "shell": "shell",
    "sh": "shell",
}


def profile_for(wf: Workflow, task: Task) -> AgentProfile:
    """The task's profile; a `run` task is a shell task unless its profile is a command."""
    profile = wf.agents.get(task.agent)
    if profile is None:
        preset = _IMPLICIT.get(task.agent, task.agent if task.agent in _EXECUTABLES else None)
        if preset is None:
            raise UserError(f"task {task.id}: unknown agent profile {task.agent!r}")
        profile = AgentProfile(name=task.agent, preset=preset)
    if task.run and profile.kind not in ("shell", "command"):
        return AgentProfile(name="shell", preset="shell")
    return profile


def executable(profile: AgentProfile) -> str:
    """argv[0] of the profile, for the preflight check that it is on PATH."""
    if profile.command:
        return profile.command[0]
    return _EXECUTABLES.get(profile.kind, profile.kind)


def _environment(
    profile: AgentProfile,
    task: Task,
    secrets: Secrets,
    base_env: Mapping[str, str],
    conductor_vars: dict[str, str],
) -> dict[str, str]:
    # leaked GIT_DIR & co would point the agent's git at the wrong repository
    env = {k: v for k, v in clean_env(base_env).items() if k not in _STRIPPED_ENV}
    if profile.kind == "gemini":
        # gemini-cli >= 0.61 refuses to run headless in a folder it has not been told to
        # trust (exit 55), and every attempt's worktree is a new folder
        env["GEMINI_CLI_TRUST_WORKSPACE"] = "true"
    env.update({k: secrets.expand(v) for k, v in profile.env.items()})
    env.update({k: secrets.expand(v) for k, v in task.env.items()})
    env.update(conductor_vars)  # last: a profile must not be able to lie about identity
    return env


def build_launch(
    wf: Workflow,
    task: Task,
    *,
    worktree: Path,
    instructions_file: Path,
    run_id: str,
    attempt: int,
    port: int,
    secrets: Secrets,
    base_env: Mapping[str, str],
    resume_session: str | None = None,
    output_file: Path | None = None,
) -> Launch:
    """Everything the executor needs to start the task's agent."""
    profile = profile_for(wf, task)
    values = {
        "prompt_file": str(instructions_file.resolve()),
        "worktree": str(worktree),
        "task_id": task.id,
        "run_id": run_id,
        "attempt": str(attempt),
    }
    argv = _argv(profile, task, instructions_file, values, resume_session)
    conductor_vars = {
        "CONDUCTOR_RUN_ID": run_id,
        "CONDUCTOR_TASK_ID": task.id,
        "CONDUCTOR_ATTEMPT": str(attempt),
        "CONDUCTOR_WORKTREE": str(worktree),
        "CONDUCTOR_PORT": str(port),
        "CONDUCTOR_INSTRUCTIONS": values["prompt_file"],
    }
    if output_file is not None:  # where the task writes values for later tasks
        conductor_vars["CONDUCTOR_OUTPUT"] = str(output_file)
    env = _environment(profile, task, secrets, base_env, conductor_vars)
    return Launch(argv=argv, env=env, cwd=worktree, parser=make_parser(profile.kind, worktree))


# ------------------------------------------------------------------------------- fingerprint


def _plain(value: Any, drop: frozenset[str] = frozenset({"loc"})) -> Any:
    """JSON-able form of model objects, without source locations."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value) if f.name not in drop}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value) if isinstance(value, Path) else value


_PLAIN_CACHE: dict[int, tuple[Any, Any]] = {}


def _plain_once(obj: Any, drop: frozenset[str] = frozenset({"loc"})) -> Any:
    """_plain of an object shared by many tasks (a profile, the workspace), computed once."""
    hit = _PLAIN_CACHE.get(id(obj))
    if hit is None or hit[0] is not obj:
        hit = _PLAIN_CACHE[id(obj)] = (obj, _plain(obj, drop))
    return hit[1]


def spec_fingerprint(wf: Workflow, task: Task) -> str:
    """sha256 of everything that defines what the task produces, stable across runs.

    Scheduling knobs (priority, estimate, timeout, retries, budget, on_conflict) and source
    locations are left out: editing them must not make finished work out of date.
    """
    prompt_file = None
    if task.prompt_file:
        path = wf.source_dir / task.prompt_file
        try:
            prompt_file = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            prompt_file = "<missing>"
    try:
        profile: Any = _plain_once(profile_for(wf, task))
    except UserError:
        profile = task.agent
    group = wf.groups.get(task.group) if task.group else None
    doc = {
        "task": _plain(task, _SCHEDULING_FIELDS),
        "agent": profile,
        "prompt_file": prompt_file,
        "group_gate": _plain(group.validate) if group is not None else [],
        "workspace": _plain_once(wf.workspace, frozenset({"keep"})),
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
