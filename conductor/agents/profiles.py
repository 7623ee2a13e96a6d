"""Agent profiles: a task -> argv, env, cwd and an instructions file (DESIGN §7).

Every preset's argv is a list (never a shell string) and the prompt is only ever one argv
element, so nothing the user or an upstream agent wrote reaches a shell, except `shell`
tasks, whose `run` *is* a shell command by the user's choice. Output parsing lives in
`conductor.agents.parsers`; its AgentReport and OutputParser are re-exported here.

Headless flags, as verified against each CLI's own source or docs:

* claude-code: `claude -p PROMPT --output-format stream-json --verbose` (stream-json with
  -p requires --verbose), `--dangerously-skip-permissions`, `--model M`, `--resume SESSION`
  (docs.claude.com headless mode / CLI reference). Claude >= 2.1.39 refuses to start when
  CLAUDECODE is set (nested-session guard), so that variable is stripped.
* codex: `codex exec [--json] [-s read-only|workspace-write|danger-full-access]
  [--skip-git-repo-check] [-m MODEL] [PROMPT]` and `codex exec [OPTIONS] resume SESSION_ID
  [PROMPT]` (openai/codex codex-rs/exec/src/cli.rs, codex-rs/utils/cli SharedCliOptions):
  --json, --skip-git-repo-check and -m are global, -s is not, so options precede `resume`.
* gemini: `gemini -p PROMPT --yolo --output-format stream-json [-m M] [--resume SESSION]`
  (geminicli.com headless and session-management docs; -r/--resume takes a session UUID).
* aider: `--message-file F` (one message, then exit), `--yes-always`, and the
  BooleanOptionalAction pairs --no-pretty, --no-stream, --no-auto-commits,
  --no-dirty-commits, --no-gitignore, --no-check-update, --no-show-release-notes,
  --no-analytics, plus --input-history-file / --chat-history-file (Aider-AI/aider
  aider/args.py). Aider has no session to resume.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from conductor.agents.parsers import AgentReport, OutputParser, make_parser
from conductor.errors import InfraError, UserError
from conductor.git.cmd import clean_env
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

MAX_PROMPT_BYTES = 100_000  # below Linux's 128 KiB limit on one argv string
READ_FILE_PROMPT = "Read your full instructions from the file `{path}` and follow them exactly."
_EXECUTABLES = {
    "claude-code": "claude",
    "codex": "codex",
    "aider": "aider",
    "gemini": "gemini",
    "shell": "bash",
}
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
        "retries",
        "budget_usd",
        "on_conflict",
    ]
)
_PLACEHOLDER = re.compile(r"\{(prompt_file|prompt|worktree|task_id|run_id|attempt)\}")


# ------------------------------------------------------------------------------ instructions


@dataclass
class InstructionContext:
    run_id: str
    attempt: int
    worktree: Path
    upstream: list[tuple[str, str, str]]  # (task id, title, summary of what it changed)
    previous_failure: str | None = None
    conflict: str | None = None


def _fence(text: str, info: str = "text") -> str:
    """A code fence longer than any backtick run inside ``text``, so it cannot break out."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    bar = "`" * max(3, longest + 1)
    return f"{bar}{info}\n{text.rstrip()}\n{bar}"


def read_prompt_file(wf: Workflow, task: Task) -> str:
    path = wf.source_dir / str(task.prompt_file)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read prompt_file of task {task.id}: {exc}") from exc


def _task_text(wf: Workflow, task: Task) -> str:
    if task.prompt_file:
        return read_prompt_file(wf, task).strip()
    if task.prompt:
        return task.prompt.strip()
    if task.run:
        return "Run this shell command:\n\n" + _fence(task.run, "sh")
    return "(no prompt was given; make the change the title describes)"


def _code(text: str) -> str:
    """Inline code that survives backticks inside ``text``."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def _checks_section(wf: Workflow, task: Task) -> list[str]:
    out: list[str] = []
    checks = [_code("exists: " + ", ".join(task.outputs)) + " (the required outputs)"]
    checks = checks if task.outputs else []
    checks += [_code(v.describe()) for v in task.validate]
    if checks:
        out += [
            "## How your work is checked",
            "After you exit, these checks run in your worktree; all must pass:",
            _bullets(checks),
        ]
    group = wf.groups.get(task.group) if task.group else None
    if group is not None and group.validate:
        out += [
            f"Once every task of group {group.id} is merged, these run on the result:",
            _bullets([_code(v.describe()) for v in group.validate]),
        ]
    return out


def _context_sections(task: Task, ctx: InstructionContext) -> list[str]:
    out: list[str] = []
    if task.touches:
        scope = ", ".join(_code(t) for t in task.touches)
        out += [
            "## Scope",
            f"Change only files matching {scope}. A change to any other file fails the task.",
        ]
    if ctx.upstream:
        lines = [
            f"{tid}" + (f" ({title})" if title else "") + f": {summary}"
            for tid, title, summary in ctx.upstream
        ]
        out += [
            "## Work done before you",
            "These tasks finished first; their work is already in your worktree:",
            _bullets(lines),
        ]
    if ctx.previous_failure:
        out += [
            "## The previous attempt failed",
            "Fix what this output shows (verbatim):",
            _fence(ctx.previous_failure),
        ]
    if ctx.conflict:
        out += ["## Merge conflict", ctx.conflict]
    return out


def _protocol(wf: Workflow, task: Task, ctx: InstructionContext) -> list[str]:
    branch = f"conductor/{wf.name}/{task.id}/{ctx.attempt}"
    return [
        "## How to work",
        _bullets(
            [
                f"Work in the current directory ({ctx.worktree}), "
                f"a git worktree on branch `{branch}`.",
                "You may commit; anything you leave uncommitted is committed for you "
                "when you exit.",
                "Do not switch branches, rebase, or push.",
                "Report progress with `conductor progress PERCENT MESSAGE`, "
                'e.g. `conductor progress 50 "tests pass"`.',
                "When the task is done, exit. Exiting is how you say you are finished.",
            ]
        ),
    ]


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
    parts += _checks_section(wf, task) + _context_sections(task, ctx) + _protocol(wf, task, ctx)
    return "\n\n".join(parts) + "\n"


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


def _prompt(instructions_file: Path) -> str:
    path = instructions_file.resolve()
    try:
        if path.stat().st_size >= MAX_PROMPT_BYTES:
            return READ_FILE_PROMPT.format(path=path)
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InfraError(f"cannot read instructions file {path}: {exc}") from exc
    return text if len(text.encode()) < MAX_PROMPT_BYTES else READ_FILE_PROMPT.format(path=path)


def _claude(p: AgentProfile, prompt: str, resume: str | None) -> list[str]:
    argv = [
        "claude",
        "-p",
        prompt,
        "--output-format",
        "stream-json",
        "--verbose",
        "--dangerously-skip-permissions",
    ]
    argv += ["--model", p.model] if p.model else []
    argv += ["--resume", resume] if resume else []
    return argv + list(p.args)


def _codex(p: AgentProfile, prompt: str, resume: str | None) -> list[str]:
    argv = ["codex", "exec", "--json", "-s", "workspace-write", "--skip-git-repo-check"]
    argv += ["-m", p.model] if p.model else []
    argv += list(p.args)  # before `resume`: non-global options are not accepted after it
    argv += ["resume", resume] if resume else []
    return [*argv, prompt]


def _gemini(p: AgentProfile, prompt: str, resume: str | None) -> list[str]:
    argv = ["gemini", "-p", prompt, "--yolo", "--output-format", "stream-json"]
    argv += ["-m", p.model] if p.model else []
    argv += ["--resume", resume] if resume else []
    return argv + list(p.args)


def _aider(p: AgentProfile, instructions_file: Path) -> list[str]:
    # conductor commits for aider (--no-auto-commits) and keeps aider's own files out of the
    # worktree: history beside the instructions file, no .gitignore edits, no prompts.
    path = instructions_file.resolve()
    argv = [
        "aider",
        "--message-file",
        str(path),
        "--yes-always",
        "--no-pretty",
        "--no-stream",
        "--no-auto-commits",
        "--no-dirty-commits",
        "--no-gitignore",
        "--no-check-update",
        "--no-show-release-notes",
        "--no-analytics",
        "--input-history-file",
        str(path.with_suffix(".aider.input.history")),
        "--chat-history-file",
        str(path.with_suffix(".aider.chat.md")),
    ]
    argv += ["--model", p.model] if p.model else []
    return argv + list(p.args)


def _command(p: AgentProfile, values: dict[str, str]) -> list[str]:
    """Substitute the known placeholders only: other braces in user args stay as written."""

    def fill(arg: str) -> str:
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], arg)

    return [fill(a) for a in (*(p.command or ()), *p.args)]


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


def _argv(
    profile: AgentProfile, task: Task, instructions_file: Path, values: dict[str, str],
    resume: str | None,
) -> list[str]:  # fmt: skip
    kind = profile.kind
    if kind == "shell":
        if not task.run:
            raise UserError(f"task {task.id}: the shell preset needs a `run` command")
        return ["bash", "-c", task.run]
    if kind == "aider":
        return _aider(profile, instructions_file)
    if kind == "command":
        if any("{prompt}" in a for a in (*(profile.command or ()), *profile.args)):
            values = {**values, "prompt": _prompt(instructions_file)}
        return _command(profile, values)
    build = {"claude-code": _claude, "codex": _codex, "gemini": _gemini}.get(kind)
    if build is None:
        raise UserError(f"agent profile {profile.name!r}: unknown preset {kind!r}")
    return build(profile, _prompt(instructions_file), resume)


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
