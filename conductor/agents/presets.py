"""How each preset starts its agent CLI headless: the argv of a launch.

Every preset's argv is a list (never a shell string) and the prompt is only ever one argv
element, so nothing the user or an upstream agent wrote reaches a shell, except `shell`
tasks, whose `run` *is* a shell command by the user's choice. A prompt too long for one
argv string is replaced by a pointer to the instructions file.

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

import re
from collections.abc import Sequence
from pathlib import Path

from conductor.errors import InfraError, UserError
from conductor.spec.model import AgentProfile, Task

MAX_PROMPT_BYTES = 100_000  # below Linux's 128 KiB limit on one argv string
READ_FILE_PROMPT = "Read your full instructions from the file `{path}` and follow them exactly."
_EXECUTABLES = {
    "claude-code": "claude",
    "codex": "codex",
    "aider": "aider",
    "gemini": "gemini",
    "shell": "bash",
}
_PLACEHOLDER = re.compile(r"\{(prompt_file|prompt|worktree|task_id|run_id|attempt)\}")


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


_CODEX_BYPASS = ("--dangerously-bypass-approvals-and-sandbox", "--yolo")


def _codex_sandbox(args: Sequence[str]) -> str | None:
    """The sandbox mode a codex profile's own ``args`` choose (`-s MODE`, `--sandbox=MODE`,
    `-c sandbox_mode=MODE`; the bypass flag is no sandbox at all), None if they choose none."""
    mode = None
    for i, arg in enumerate(args):
        nxt = args[i + 1] if i + 1 < len(args) else ""
        if arg in _CODEX_BYPASS:
            return "danger-full-access"
        if arg in ("-s", "--sandbox"):
            mode = nxt
        elif arg.startswith("--sandbox="):
            mode = arg.split("=", 1)[1]
        elif arg in ("-c", "--config") and nxt.startswith("sandbox_mode=") and mode is None:
            mode = nxt.split("=", 1)[1].strip("\"'")
    return mode


def can_commit(profile: AgentProfile) -> bool:
    """Can the agent's own tools write to git in its worktree? A worktree's git directory
    lies outside it, and a sandbox that confines writes to the working directory (Codex's
    workspace-write, with `.git` read-only too; Gemini CLI's `--sandbox`) keeps `git commit`
    from working: conductor commits for such agents, and their instructions say so."""
    if profile.kind == "codex":
        return (_codex_sandbox(profile.args) or "workspace-write") == "danger-full-access"
    if profile.kind == "gemini":
        on = ("-s", "--sandbox", "--sandbox=true")
        flag = any(a in on for a in profile.args)
        env = profile.env.get("GEMINI_SANDBOX", "").lower() not in ("", "false", "0")
        return not (flag or env)
    return True


def _codex(p: AgentProfile, prompt: str, resume: str | None) -> list[str]:
    argv = ["codex", "exec", "--json"]
    # workspace-write unless the profile's args choose a sandbox (clap refuses two -s)
    argv += ["-s", "workspace-write"] if _codex_sandbox(p.args) is None else []
    argv += ["--skip-git-repo-check"]
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

