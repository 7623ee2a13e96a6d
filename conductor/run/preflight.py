"""Checks that need the machine, done before anything starts (`run`, `--validate-only`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conductor.agents import profiles as agents
from conductor.errors import Diagnostic, UserError
from conductor.git import owned, refs
from conductor.plan.planner import Plan
from conductor.run.policies import policy_problems
from conductor.run.remote_checks import ray_problems
from conductor.run.sandboxing import sandbox_preview, sandbox_problems
from conductor.spec.model import AgentProfile, Workflow
from conductor.spec.secrets import MIN_SECRET_LEN, collect_refs, short_values

if TYPE_CHECKING:
    from conductor.git.workspace import Workspace


def _used_profiles(wf: Workflow, plan: Plan) -> dict[str, AgentProfile]:
    """The profiles the selected tasks really launch (a `run` task is always bash)."""
    used = (agents.profile_for(wf, wf.tasks[t]) for t in plan.selected)
    return {p.name: p for p in used}


def check_machine(
    wf: Workflow,
    plan: Plan,
    environ: Mapping[str, str],
    ws: Workspace | None = None,
    *,
    adopt_branch: bool = False,
) -> list[Diagnostic]:
    """Every problem that would stop the run: repository, base, integration branch, prompt
    files, executables, variables. ``adopt_branch``: the user lets the run take an existing
    integration branch conductor did not create (`run --adopt-branch`)."""
    from conductor.git.workspace import Workspace

    where = str(wf.path)
    problems: list[Diagnostic] = []
    try:
        ws = ws or Workspace.discover(wf.repo_start)
    except UserError as exc:  # not a repository, or no git at all
        return [Diagnostic(str(exc), where, hint=exc.hint)]
    found = ws.revs([refs.branch_ref(wf.integration_branch), wf.base])
    if not any(found.values()):
        problems.append(
            Diagnostic(
                f"base `{wf.base}` does not resolve to a commit",
                where,
                hint="set `base:` to an existing branch or commit",
            )
        )
    worktrees = ws.list_worktrees()
    exists = found[refs.branch_ref(wf.integration_branch)] is not None
    problems += _branch_problems(wf, ws, worktrees, exists, adopt_branch)
    problems += _prompt_problems(wf, ws, [path for path, _ in worktrees])
    problems += _executable_problems(wf, plan, environ)
    problems += policy_problems(wf, ws.root)  # a `module:Class` of the user's that fails
    for var, places in sorted(collect_refs(wf).items()):
        if var not in environ:
            problems.append(
                Diagnostic(
                    f"environment variable ${{{var}}} is not set (used by {', '.join(places)})",
                    where,
                )
            )
    problems += _short_secret_problems(wf, environ)
    problems += ray_problems(wf, plan, environ)  # Ray installed, reachable, pools fit
    problems += sandbox_problems(wf, plan)
    return problems


def _short_secret_problems(wf: Workflow, environ: Mapping[str, str]) -> list[Diagnostic]:
    """A secret is masked wherever its text occurs: a short value ("dev", "true") would
    mask every occurrence of a common word, so it is refused rather than masked."""
    return [
        Diagnostic(
            f"secret ${{{var}}} is only {n} characters long: too short to be masked safely",
            str(wf.path),
            hint=f"use a value of at least {MIN_SECRET_LEN} characters, or pass a short "
            "setting another way than `${VAR}` in `env` (or drop it from `secrets:`)",
        )
        for var, n in short_values(wf, environ).items()
    ]


def _branch_problems(
    wf: Workflow,
    ws: Workspace,
    worktrees: list[tuple[Path, str | None]],
    exists: bool,
    adopt: bool,
) -> list[Diagnostic]:
    """The integration branch is moved by every merge, without a working tree: one that is
    checked out would change under the user's index and files, and one conductor did not
    create is somebody's own branch (`integration_branch: main`)."""
    branch, where = wf.integration_branch, str(wf.path)
    rename = "set `integration_branch:` to a branch conductor may create"
    if branch != f"conductor/{wf.name}":
        rename += f" (e.g. conductor/{wf.name})"
    problems = [
        Diagnostic(
            f"integration branch `{branch}` is checked out in the worktree at {path}: "
            "conductor would move it under that worktree's index and files",
            where,
            hint=f"{rename}, or check out another branch there",
        )
        for path, checked_out in worktrees
        if checked_out == branch
    ]
    if exists and not adopt and not problems and not owned.created_by_conductor(ws.root, branch):
        problems.append(
            Diagnostic(
                f"integration branch `{branch}` already exists and conductor did not create it",
                where,
                hint=f"{rename}, or pass --adopt-branch to let conductor merge into it",
            )
        )
    return problems


def _prompt_problems(wf: Workflow, ws: Workspace, roots: list[Path]) -> list[Diagnostic]:
    """Prompt files must be the repository's own: their text goes to an agent (and into
    the spec hash), so `../../home/me/.ssh/id_rsa` or a symlink to it must not be read.
    Resolved with symlinks, checked against every worktree of the repository (a workflow
    may sit in a linked one), never inside the git directory."""
    inside = [r.resolve() for r in roots or [ws.root]]
    git_dir = ws.common_dir.resolve()
    problems: list[Diagnostic] = []
    for task in wf.tasks.values():
        if not task.prompt_file:
            continue
        target = (wf.source_dir / task.prompt_file).resolve()
        if any(target.is_relative_to(r) for r in inside) and not target.is_relative_to(git_dir):
            continue
        loc = task.loc
        problems.append(
            Diagnostic(
                f"tasks.{task.id}.prompt_file: `{task.prompt_file}` resolves to {target}, "
                f"outside the repository {ws.root}",
                loc.path if loc else str(wf.path),
                loc.line if loc else None,
                loc.col if loc else None,
                hint="prompt files must live in the repository (symlinks are followed): "
                "copy the file in and point `prompt_file:` at the copy",
            )
        )
    return problems


def _executable_problems(wf: Workflow, plan: Plan, environ: Mapping[str, str]) -> list[Diagnostic]:
    where = str(wf.path)
    problems: list[Diagnostic] = []
    path = environ.get("PATH", os.defpath)
    for name, profile in sorted(_used_profiles(wf, plan).items()):
        exe = agents.executable(profile)
        if shutil.which(exe, path=path) is None and not Path(exe).is_file():
            loc = profile.loc
            problems.append(
                Diagnostic(
                    f"agent `{name}`: executable `{exe}` is not on PATH",
                    loc.path if loc else where,
                    loc.line if loc else None,
                    loc.col if loc else None,
                    hint=_install_hint(profile.kind),
                )
            )
    return problems


INSTALL = {
    "claude-code": "npm install -g @anthropic-ai/claude-code",
    "codex": "npm install -g @openai/codex",
    "gemini": "npm install -g @google/gemini-cli",
    "aider": "pip install aider-chat",
}


def _install_hint(kind: str) -> str:
    return (
        f"install it with `{INSTALL[kind]}`" if kind in INSTALL else "check the profile's command"
    )


def agent_versions(wf: Workflow, plan: Plan, environ: Mapping[str, str]) -> dict[str, str]:
    """`<exe> --version` of each agent CLI the selection uses (presets only: a custom
    command's flags are unknown, and running it could have effects)."""
    from conductor.exec.local import capture

    out: dict[str, str] = {}
    for name, profile in sorted(_used_profiles(wf, plan).items()):
        if profile.preset in (None, "shell"):
            continue
        exe = shutil.which(agents.executable(profile), path=environ.get("PATH", os.defpath))
        if exe is None:
            continue
        res, lines = capture([exe, "--version"], wf.source_dir, environ, timeout_s=15)
        text = [line.strip() for line in lines if line.strip()]
        if res.reason not in ("exited", "start_failed"):
            out[name] = f"(no version: {res.error})"
        elif text:
            out[name] = text[0]
        else:
            out[name] = f"(no version: {res.error})" if res.error else f"(exit {res.exit_code})"
    return out


@dataclass(frozen=True)
class Preview:
    """What `run --validate-only` reports: problems that would stop the run, the tasks it
    would skip as up to date (and why), and the versions of the agent CLIs it would use."""

    problems: list[Diagnostic]
    skips: dict[str, str]
    versions: dict[str, str]
    # per agent profile and policy: {"agent", "tasks", "policy"} (run/sandboxing.py)
    sandboxes: list[dict[str, Any]] = field(default_factory=list)


def preview(plan: Plan, environ: Mapping[str, str], *, adopt_branch: bool = False) -> Preview:
    from conductor.run.uptodate import skip_reasons

    wf = plan.workflow
    problems = check_machine(wf, plan, environ, adopt_branch=adopt_branch)
    skips = skip_reasons(wf, plan) if not problems else {}
    return Preview(problems, skips, agent_versions(wf, plan, environ),
                   sandbox_preview(wf, plan, environ))  # fmt: skip
