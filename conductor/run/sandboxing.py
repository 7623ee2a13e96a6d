"""The sandbox an attempt's agent runs in: a task's `sandbox:` resolved on this machine.

spec/sandbox.py says what the file asked for; here it becomes an exec/sandbox.py
:class:`SandboxPolicy` of absolute, existing paths for one attempt, and what the sandbox
refused is recorded. The built-in policy (`sandbox: true`), which a mapping adjusts:

* writable: the worktree (its `$CONDUCTOR_OUTPUT` and progress spool are in it), a
  private /tmp, and the agent's own state — Claude Code `~/.claude` and `~/.claude.json`,
  Codex `$CODEX_HOME` (else `~/.codex`), Gemini `~/.gemini`, Aider `~/.aider` and its
  history files beside the instructions — plus ``read_write`` (a missing directory is
  created);
* unreadable: `~/.ssh`, `~/.aws`, `~/.gnupg`, `~/.config/gh` (of the agent's HOME and of
  the user's own home when they differ), the repository's top-level `.env*` files, and
  the sockets that grant more than files (docker, containerd, podman, `/run/user/UID`,
  `$SSH_AUTH_SOCK`: a read-only mount does not stop a connect), plus ``read_deny``. A
  default state path or unreadable path named in ``read_only`` or ``read_write`` takes
  that rule instead: what the file says beats what is built in;
* read-only: everything else, including the main checkout, `.git` (conductor commits for
  the agent), `.conductor/` and other worktrees; ``read_only`` paths inside writable ones;
* network: `none` for shell tasks and custom commands; for agent presets their model
  endpoint: `ANTHROPIC_BASE_URL`'s host:port for Claude Code (else api.anthropic.com:443),
  api.openai.com:443 and chatgpt.com:443 for Codex (whose endpoint lives in its own
  config: name it when it is another), Google's endpoints for Gemini; `full` for Aider,
  whose provider depends on its model (name it to confine it).

``~`` is the HOME of the environment the agent runs with. Paths that do not exist are left
out (nothing to protect, nothing to show), except writable directories, which are made.
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from conductor.errors import Diagnostic, Rejected
from conductor.exec.base import ProcessResult
from conductor.exec.sandbox import Endpoint, SandboxPolicy
from conductor.spec.model import SandboxSpec, Task, Workflow
from conductor.spec.sandbox import parse_endpoint

if TYPE_CHECKING:
    from conductor.plan.planner import Plan
    from conductor.run.context import RunContext

DENY = ("~/.ssh", "~/.aws", "~/.gnupg", "~/.config/gh")
# sockets that hand out more than the user's files: a read-only mount does not stop a
# connect(), so they are covered too (the agent's own ssh-agent socket with them)
SOCKETS = ("/run/docker.sock", "/var/run/docker.sock", "/run/containerd/containerd.sock",
           "/run/podman/podman.sock", "/run/user/{uid}")  # fmt: skip
STATE: dict[str, tuple[str, ...]] = {  # a trailing `/`: a directory, made when missing
    "claude-code": ("~/.claude/", "~/.claude.json"),
    "codex": ("$CODEX_HOME/",),
    "gemini": ("~/.gemini/",),
    "aider": ("~/.aider/",),
}
MODEL_HOSTS: dict[str, tuple[str, ...]] = {
    "codex": ("api.openai.com:443", "chatgpt.com:443"),
    "gemini": ("generativelanguage.googleapis.com:443", "cloudcode-pa.googleapis.com:443",
               "oauth2.googleapis.com:443"),
}
_URL_VAR = {"claude-code": ("ANTHROPIC_BASE_URL", "api.anthropic.com:443")}


def _homes(env: Mapping[str, str]) -> list[Path]:
    """The agent's HOME first, then the user's own home when it is another."""
    try:
        own = Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        own = None
    agent = Path(env["HOME"]) if env.get("HOME") else own
    return list(dict.fromkeys(p for p in (agent, own) if p is not None))


def _expand(text: str, home: Path, env: Mapping[str, str]) -> Path:
    if text.startswith("$CODEX_HOME"):
        base = env.get("CODEX_HOME") or str(home / ".codex")
        return Path(os.path.realpath(base + text[len("$CODEX_HOME") :]))
    if text == "~" or text.startswith("~/"):
        return Path(os.path.realpath(str(home) + text[1:]))
    return Path(os.path.realpath(text))


def _network(spec: SandboxSpec, kind: str, env: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """("full" | "none" | "allow", allowed endpoints as written)."""
    if spec.network in ("full", "none"):
        return spec.network, ()
    if isinstance(spec.network, tuple):
        return "allow", spec.network
    if kind in _URL_VAR:
        var, fallback = _URL_VAR[kind]
        return "allow", (_url_endpoint(env.get(var, "")) or fallback,)
    if kind in MODEL_HOSTS:
        return "allow", MODEL_HOSTS[kind]
    return ("full", ()) if kind == "aider" else ("none", ())


def _url_endpoint(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return f"[{parts.hostname}]:{port}" if ":" in parts.hostname else f"{parts.hostname}:{port}"


def _endpoints(items: Sequence[str]) -> tuple[Endpoint, ...]:
    out = []
    for item in items:
        parsed = parse_endpoint(item)
        if isinstance(parsed, tuple):
            out.append(Endpoint(*parsed))
    return tuple(dict.fromkeys(out))


def _state(kind: str, home: Path, env: Mapping[str, str], files: Sequence[Path],
           make: bool) -> list[Path]:  # fmt: skip
    """The agent's own state paths (directories made), plus ``files`` it must write."""
    out = []
    for text in STATE.get(kind, ()):
        path = _expand(text.rstrip("/"), home, env)
        if text.endswith("/") and make:
            path.mkdir(parents=True, exist_ok=True)
        if text.endswith("/") or path.exists():  # a file is bound only when it exists
            out.append(path)
    return [*out, *(Path(os.path.realpath(f)) for f in files)]


def resolve(
    spec: SandboxSpec, kind: str, *, worktree: Path, repo: Path, env: Mapping[str, str],
    files: Sequence[Path] = (), make: bool = True,
) -> SandboxPolicy:  # fmt: skip
    """The policy of one attempt: ``kind`` is its profile's (`claude-code`, `shell`, …),
    ``env`` the environment it runs with, ``files`` more files it must write; ``make``
    creates missing writable directories (False: only describe, change nothing)."""
    homes = _homes(env)
    home = homes[0] if homes else Path("/")
    ex = [_expand(p, home, env) for p in (*spec.read_write, *spec.read_only, *spec.read_deny)]
    rw = ex[: len(spec.read_write)]
    ro = ex[len(spec.read_write) : len(spec.read_write) + len(spec.read_only)]
    explicit = set(ex)
    for path in rw if make else ():
        path.mkdir(parents=True, exist_ok=True)
    writable = [p for p in _state(kind, home, env, files, make) if p not in explicit] + rw
    deny = [_expand(d, h, env) for h in homes for d in DENY] + sorted(repo.glob(".env*"))
    deny += [_expand(p.format(uid=os.getuid()), home, env) for p in SOCKETS]
    deny += [_expand(env["SSH_AUTH_SOCK"], home, env)] if env.get("SSH_AUTH_SOCK") else []
    deny = [p for p in deny if p not in explicit] + ex[len(rw) + len(ro) :]
    mode, allowed = _network(spec, kind, env)
    wt = Path(os.path.realpath(worktree))
    return SandboxPolicy(
        worktree=wt,
        writable=tuple(dict.fromkeys(writable)),  # made above (or, describing, they would be)
        read_only=_existing([*ro, wt / ".git"]),
        denied=_existing(deny),
        visible=_existing([Path(os.path.realpath(repo)), home]),
        network="allow" if mode == "allow" else "full" if mode == "full" else "none",
        allow=_endpoints(allowed),
    )


def _existing(paths: Sequence[Path]) -> tuple[Path, ...]:
    return tuple(p for p in dict.fromkeys(paths) if os.path.lexists(p))


# ------------------------------------------------------------------ an attempt


def aider_files(instructions: Path) -> list[Path]:
    """The history files presets.py points aider at, beside its instructions (which are
    read-only in a sandbox): made empty so they can be bound writable."""
    path = instructions.resolve()
    out = [path.with_suffix(".aider.input.history"), path.with_suffix(".aider.chat.md")]
    for f in out:
        f.touch()
    return out


def policy_for(
    ctx: RunContext, task: Task, worktree: Path, env: Mapping[str, str], instructions: Path
) -> SandboxPolicy | None:
    """The attempt's policy, None without `sandbox:`. Never a silent downgrade: a sandbox
    this attempt cannot have fails it."""
    if task.sandbox is None:
        return None
    from conductor.agents.profiles import profile_for

    profile = profile_for(ctx.wf, task)
    if profile.executor != "local":
        raise Rejected(f"agent profile {profile.name}: `sandbox:` needs the local executor, "
                       f"not {profile.executor}", retriable=False)  # fmt: skip
    try:
        files = aider_files(instructions) if profile.kind == "aider" else []
        return resolve(task.sandbox, profile.kind, worktree=worktree, repo=ctx.ws.root,
                       env=env, files=files)  # fmt: skip
    except OSError as exc:  # a writable directory that cannot be made: fail, never widen
        raise Rejected(f"sandbox: cannot prepare {exc.filename or 'a path'}: "
                       f"{exc.strerror or exc}", retriable=False) from exc  # fmt: skip


def record(ctx: RunContext, task_id: str, n: int, policy: SandboxPolicy | None,
           result: ProcessResult) -> None:  # fmt: skip
    """A `task_sandbox` event per sandboxed attempt (its line in the execution log), and
    a warning that names what the sandbox refused, if anything."""
    if policy is None:
        return
    refused = {what: count for what, count in result.refused}
    ctx.emit("task_sandbox", task_id, attempt=n, policy=policy.describe(),
             refused=sum(refused.values()), refusals=refused)  # fmt: skip
    if refused:
        shown = "; ".join(f"{what} ×{count}" for what, count in refused.items())
        ctx.emit("task_warning", task_id, attempt=n,
                 warning=f"the sandbox refused {sum(refused.values())}: {shown}")  # fmt: skip


# ------------------------------------------------------------------ before the run


def _sandboxed(wf: Workflow, plan: Plan) -> list[Task]:
    return [wf.tasks[t] for t in plan.selected if wf.tasks[t].sandbox is not None]


def sandbox_problems(wf: Workflow, plan: Plan) -> list[Diagnostic]:
    """Preflight: a sandbox that cannot be made here stops the run before it starts,
    with the fix; a task that asks for one never runs unconfined."""
    from conductor.agents.profiles import profile_for
    from conductor.exec.sandbox import INSTALL_HINT, unavailable

    tasks = _sandboxed(wf, plan)
    out: list[Diagnostic] = []
    for task in tasks:
        profile = profile_for(wf, task)
        if profile.executor != "local":
            out.append(_at(task, f"task {task.id}: `sandbox:` needs the local executor; agent "
                                 f"{profile.name} runs in {profile.executor}",
                           "drop `sandbox:` for this task or run its agent locally"))  # fmt: skip
    why = unavailable() if tasks else None
    if why is not None:
        ids = ", ".join(t.id for t in tasks[:5]) + (", …" if len(tasks) > 5 else "")
        out.append(_at(tasks[0], f"{len(tasks)} task(s) ask for a sandbox ({ids}), but {why}; "
                                 "conductor never runs them unconfined", INSTALL_HINT))  # fmt: skip
    return out


def _at(task: Task, message: str, hint: str) -> Diagnostic:
    loc = task.loc
    return Diagnostic(message, loc.path if loc else "", loc.line if loc else None,
                      loc.col if loc else None, hint)  # fmt: skip


def sandbox_preview(wf: Workflow, plan: Plan, environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """`run --validate-only`: per agent profile (and policy), what its sandbox allows,
    resolved against this machine without changing anything on it."""
    from conductor.agents.profiles import profile_for

    groups: dict[tuple[str, str], list[str]] = {}
    for task in _sandboxed(wf, plan):
        assert task.sandbox is not None
        profile = profile_for(wf, task)
        env = {**environ, **{k: _vars(v, environ) for k, v in profile.env.items()},
               **{k: _vars(v, environ) for k, v in task.env.items()}}  # fmt: skip
        policy = resolve(task.sandbox, profile.kind, worktree=_WORKTREE, repo=_repo(wf),
                         env=env, make=False)  # fmt: skip
        text = replace(policy, worktree=_WORKTREE).describe()
        groups.setdefault((profile.name, text), []).append(task.id)
    return [{"agent": name, "tasks": ids, "policy": text}
            for (name, text), ids in groups.items()]  # fmt: skip


_WORKTREE = Path("<worktree>")


def _repo(wf: Workflow) -> Path:
    """The repository holding the workflow file: the nearest directory with `.git`."""
    return next((d for d in (wf.source_dir, *wf.source_dir.parents) if (d / ".git").exists()),
                wf.source_dir)  # fmt: skip


def _vars(value: str, environ: Mapping[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: environ.get(m[1], ""), value)
