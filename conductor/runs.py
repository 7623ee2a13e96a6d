"""Starting a run: selection, up-to-date checks, the run record, the runner, the log.

Everything that can refuse (exit 2) happens before the run row is written, so a
refused run leaves no trace in the store or the repository.
"""

from __future__ import annotations

import os
import secrets as pyrandom
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from conductor import agents, report
from conductor.context import RunContext
from conductor.engine import Runner
from conductor.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, SpecError, UserError
from conductor.events import Emitter, Sink
from conductor.model import Workflow
from conductor.plan import Plan, remaining_path_hours
from conductor.preflight import check_machine
from conductor.scheduler import Scheduler
from conductor.secrets import Secrets, resolve
from conductor.store import Store, open_store
from conductor.workspace import Workspace


@dataclass
class RunOptions:
    strategy: str | None = None
    concurrency: int | None = None
    fail_fast: bool = False
    force: bool = False
    selection: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Prepared:
    """A run that passed every check and is recorded, ready to execute."""

    wf: Workflow
    plan: Plan
    ws: Workspace
    store: Store
    run_id: str
    secrets: Secrets
    skipped: dict[str, str]  # task -> why it is skipped
    options: RunOptions


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + pyrandom.token_hex(2)


def up_to_date(wf: Workflow, ws: Workspace, store: Store, task_id: str) -> str | None:
    """Why the task need not run again, or None when it must."""
    row = store.last_success(wf.name, task_id)
    if row is None or not row["merge_commit"]:
        return None
    if row["spec_hash"] != agents.spec_fingerprint(wf, wf.tasks[task_id]):
        return None
    if not ws.is_merged(wf.integration_branch, row["merge_commit"]):
        return None
    return f"up to date (succeeded in run {row['run_id']})"


def prepare(wf: Workflow, plan: Plan, opts: RunOptions, environ: Mapping[str, str]) -> Prepared:
    problems = check_machine(wf, plan, environ)
    if problems:
        raise SpecError(problems)
    secrets = resolve(wf, environ)
    ws = Workspace.discover(wf.path)
    ws.ensure_state_dir()
    store = open_store(ws.state_dir)
    try:
        return _record(wf, plan, opts, ws, store, secrets)
    except BaseException:
        store.close()
        raise


def _record(
    wf: Workflow, plan: Plan, opts: RunOptions, ws: Workspace, store: Store, secrets: Secrets
) -> Prepared:
    active = store.active_runs(wf.name)
    if active:
        raise UserError(
            f"run {active[0]['id']} of workflow `{wf.name}` is still running",
            hint=f"wait for it, or `conductor cancel {active[0]['id']}`",
        )
    skipped = {} if opts.force else _skips(wf, plan, ws, store)
    _check_external(wf, plan, ws, store)
    ws.ensure_branch(wf.integration_branch, wf.base)
    run_id = new_run_id()
    rel = os.path.relpath(wf.path, ws.root)
    rows = [
        (
            t,
            wf.tasks[t].group,
            wf.tasks[t].agent,
            "skipped" if t in skipped else "pending",
            agents.spec_fingerprint(wf, wf.tasks[t]),
        )
        for t in plan.selected
    ]
    options = {
        "selection": dict(opts.selection),
        "force": opts.force,
        "strategy": opts.strategy or wf.strategy,
        "fail_fast": opts.fail_fast,
        "concurrency": opts.concurrency or wf.concurrency,
    }
    store.create_run(run_id, rel, wf.name, wf.integration_branch, options, rows)
    store.update_run(run_id, base_commit=ws.rev(wf.integration_branch))
    return Prepared(wf, plan, ws, store, run_id, secrets, skipped, opts)


def _skips(wf: Workflow, plan: Plan, ws: Workspace, store: Store) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in plan.selected:
        why = up_to_date(wf, ws, store, t)
        # a task is only skipped if everything it depends on is skipped too
        if why and all(d in out or d not in plan.selected for d in wf.tasks[t].deps):
            out[t] = why
    return out


def _check_external(wf: Workflow, plan: Plan, ws: Workspace, store: Store) -> None:
    missing = sorted(
        {
            d
            for deps in plan.external_deps.values()
            for d in deps
            if up_to_date(wf, ws, store, d) is None
        }
    )
    if missing:
        raise UserError(
            "selected tasks depend on tasks outside the selection that are not done: "
            + ", ".join(missing),
            hint="run those first, or add --with-deps",
        )


def execute(prep: Prepared, sinks: list[Sink], environ: Mapping[str, str]) -> tuple[str, int]:
    """Run to the end; returns (final state, exit code). Installs SIGINT/SIGTERM handlers."""
    wf, opts = prep.wf, prep.options
    emit = Emitter(prep.store, prep.run_id, prep.secrets.redact)
    emit.sinks.extend(sinks)
    ctx = RunContext(
        wf,
        prep.ws,
        prep.store,
        prep.run_id,
        prep.secrets,
        emit,
        # so `conductor progress` inside an agent finds the store
        base_env={**environ, "CONDUCTOR_STATE_DIR": str(prep.ws.state_dir)},
    )
    sched = _scheduler(prep)
    for t, why in prep.skipped.items():
        emit("task_skipped", t, reason=why)
    runner = Runner(ctx, sched, fail_fast=opts.fail_fast)
    restore = _install_signals(runner.interrupt)
    try:
        final = runner.run()
    finally:
        restore()
    log = report.write_log(prep.store, prep.run_id, wf, prep.ws)
    emit("log_written", None, path=str(log))
    code = {"succeeded": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(final, EXIT_FAILED)
    return final, code


def _scheduler(prep: Prepared) -> Scheduler:
    from conductor.scopes import overlap

    wf, plan, opts = prep.wf, prep.plan, prep.options
    sched = Scheduler(
        wf,
        plan.selected,
        {t: plan.wave_of(t) for t in plan.selected},
        remaining_path_hours(plan),
        strategy=opts.strategy or wf.strategy,
        concurrency=opts.concurrency or wf.concurrency,
        overlap=overlap,
    )
    for t in prep.skipped:
        sched.set(t, "skipped")
    # a skipped task counts as done for its dependents
    for t in prep.skipped:
        sched.state[t] = "succeeded"
    for g in list(sched.gates):
        members = [t for t in plan.selected if wf.tasks[t].group == g]
        if members and all(t in prep.skipped for t in members):
            sched.gates[g] = "passed"
    return sched


def _install_signals(handler: Callable[[], None]) -> Callable[[], None]:
    """Route SIGINT/SIGTERM to the runner; returns a function restoring the old handlers."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        handler()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore


def run_dir(ws: Workspace, run_id: str) -> Path:
    return ws.state_dir / "runs" / run_id
