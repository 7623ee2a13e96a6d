"""A group's gate: its validators on a throwaway checkout of the integration branch."""

from __future__ import annotations

from dataclasses import dataclass

from conductor.errors import ConductorError
from conductor.exec.sweep import new_mark
from conductor.git.env import clean_env
from conductor.run import validators
from conductor.run.context import RunContext


@dataclass
class GateOutcome:
    group: str
    ok: bool
    output: str = ""


def run_gate(ctx: RunContext, group: str) -> GateOutcome:
    """Check out the integration head, run the group's validators there, remove it."""
    path = ctx.layout.gate_worktree(ctx.run_id, group)
    try:
        head = ctx.ws.rev(ctx.wf.integration_branch) or ""
        ctx.ws.add_temp_worktree(path, head)
        try:
            env = {**clean_env(ctx.base_env), "CONDUCTOR_RUN_ID": ctx.run_id,
                   "CONDUCTOR_GROUP": group}  # fmt: skip
            # stopped by cancel and Ctrl-C like an attempt; its processes carry a marker
            how = validators.CheckEnv(env, _timeout(ctx, group), ctx.secrets.redact,
                                      ctx.executor, ctx.stopping, ctx.kill_now,
                                      new_mark(ctx.run_id, f"gate:{group}"))  # fmt: skip
            results = validators.run_gate(ctx.wf.groups[group].validate, path, how)
        finally:
            ctx.ws.remove_worktree(path, force=True)
    except ConductorError as exc:
        return GateOutcome(group, False, str(exc))
    failed = [r for r in results if not r.ok]
    return GateOutcome(group, not failed, validators.summarize_failures(failed))


def _timeout(ctx: RunContext, group: str) -> float:
    """A gate check's default limit: the longest ``timeout`` among the group's tasks."""
    limits = [t.timeout_s for t in ctx.wf.tasks.values() if t.group == group and t.timeout_s]
    return max(limits, default=validators.DEFAULT_TIMEOUT_S)
