"""Checks that need the machine, done before anything starts (`run`, `--validate-only`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conductor.agents import profiles as agents
from conductor.errors import Diagnostic, UserError
from conductor.git import refs
from conductor.plan.planner import Plan
from conductor.spec.model import AgentProfile, Workflow
from conductor.spec.secrets import collect_refs

if TYPE_CHECKING:
    from conductor.git.workspace import Workspace


def _used_profiles(wf: Workflow, plan: Plan) -> dict[str, AgentProfile]:
    """The profiles the selected tasks really launch (a `run` task is always bash)."""
    used = (agents.profile_for(wf, wf.tasks[t]) for t in plan.selected)
    return {p.name: p for p in used}


def check_machine(
    wf: Workflow, plan: Plan, environ: Mapping[str, str], ws: Workspace | None = None
) -> list[Diagnostic]:
    """Every problem that would stop the run: repository, base, executables, variables."""
    from conductor.git.workspace import Workspace

    where = str(wf.path)
    problems: list[Diagnostic] = []
    try:
        ws = ws or Workspace.discover(wf.path)
    except UserError as exc:
        return [Diagnostic(str(exc), where, hint=exc.hint)]
    if not any(ws.revs([refs.branch_ref(wf.integration_branch), wf.base]).values()):
        problems.append(
            Diagnostic(
                f"base `{wf.base}` does not resolve to a commit",
                where,
                hint="set `base:` to an existing branch or commit",
            )
        )
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
    for var, places in sorted(collect_refs(wf).items()):
        if var not in environ:
            problems.append(
                Diagnostic(
                    f"environment variable ${{{var}}} is not set (used by {', '.join(places)})",
                    where,
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


def preview(plan: Plan, environ: Mapping[str, str]) -> Preview:
    from conductor.run.uptodate import skip_reasons

    wf = plan.workflow
    problems = check_machine(wf, plan, environ)
    skips = skip_reasons(wf, plan) if not problems else {}
    return Preview(problems, skips, agent_versions(wf, plan, environ))
