"""Starting a run: selection, up-to-date checks, the run record, the runner, the log.

A run that is refused (exit 2) leaves no trace in the store or the repository: its row,
written first so that one run per workflow is claimed atomically, is taken out again.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conductor.agents import profiles as agents
from conductor.errors import EXIT_FAILED, ConductorError, SpecError, StoreError
from conductor.exec.base import Executor
from conductor.exec.local import LocalExecutor
from conductor.exec.sweep import become_subreaper, sweep
from conductor.git import owned, refs
from conductor.git.env import with_ceiling
from conductor.git.history import by_task
from conductor.git.workspace import Workspace
from conductor.plan.planner import Plan, remaining_path_hours
from conductor.run.faults import crash_point
from conductor.run.preflight import check_machine
from conductor.run.replace import take_out_earlier
from conductor.run.signals import Deferred, install_signals
from conductor.run.uptodate import check_external, skips
from conductor.spec.config import RunSettings
from conductor.spec.model import Workflow
from conductor.spec.secrets import Secrets, resolve
from conductor.state.endings import exit_code
from conductor.state.layout import Layout
from conductor.state.liveness import RunLock, claim, lock_held
from conductor.state.records import RunRow
from conductor.state.states import RUN_LIVE
from conductor.state.store import Store, open_store

if TYPE_CHECKING:
    from conductor.report.logwriter import LogWriter
    from conductor.run.context import RunContext
    from conductor.run.engine import Runner
    from conductor.run.hooks import HookSink
    from conductor.run.scheduler import Scheduler
    from conductor.state.events import Sink


@dataclass
class RunOptions:
    strategy: str | None = None
    concurrency: int | None = None
    fail_fast: bool = False
    force: bool = False
    selection: Mapping[str, Any] = field(default_factory=dict)
    adopt_branch: bool = False  # take an existing integration branch conductor did not create
    auto_approve: bool = False  # `approve: true` tasks merge without waiting (CI)
    detach: bool = False  # a background runner will drive it, not this process


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
    return time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(2).hex()


def prepare(wf: Workflow, plan: Plan, opts: RunOptions, environ: Mapping[str, str]) -> Prepared:
    ws = Workspace.discover(wf.repo_start)
    problems = check_machine(wf, plan, environ, ws=ws, adopt_branch=opts.adopt_branch)
    if problems:
        raise SpecError(problems)
    secrets = resolve(wf, environ)
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
    # The run row goes in first, atomically with the check that no run of this workflow
    # is live (see `claim`), so two runs started together cannot both pass. Only then the
    # checks that may still refuse, and last the one step that changes the repository:
    # a refused run takes its row out again and so leaves no trace anywhere.
    run_id = new_run_id()
    rows = [(t, wf.tasks[t].group, wf.tasks[t].agent, "pending",
             agents.spec_fingerprint(wf, wf.tasks[t])) for t in plan.selected]  # fmt: skip
    options = {
        "selection": dict(opts.selection),
        "force": opts.force,
        "strategy": opts.strategy or wf.strategy,
        "fail_fast": opts.fail_fast,
        "concurrency": opts.concurrency or wf.concurrency,
        "auto_approve": opts.auto_approve,
    }
    rel = os.path.relpath(wf.path, ws.root)
    rel = str(wf.path) if rel.startswith("..") else rel  # a file from another place (--repo)
    claim(store, wf.name, lambda: store.create_run(
        run_id, rel, wf.name, wf.integration_branch, options, rows))  # fmt: skip
    if not opts.detach:  # this process drives it: killed before it takes the run's lock,
        # the run is free at once instead of after the start-up grace (a detached runner
        # records its own pid once it has the lock; until then the grace holds)
        store.update_run(run_id, pid=os.getpid())
    try:
        skipped = _take_branch(ws, store, wf, plan, run_id, opts.force)
    except BaseException:
        store.delete_run(run_id)
        raise
    return Prepared(wf, plan, ws, store, run_id, secrets, skipped, opts)


def _take_branch(
    ws: Workspace, store: Store, wf: Workflow, plan: Plan, run_id: str, force: bool
) -> dict[str, str]:
    """The part of starting a run that touches the repository, recorded as done by the
    run's ``base_commit``; every step may be repeated (a runner killed half way through
    leaves it to `resume`). The tasks skipped as up to date, with why."""
    log = ws.live_merge_log(wf.integration_branch)  # one `git log` answers for all tasks
    live = by_task(log)
    skipped = {} if force else skips(wf, plan, store, live)
    check_external(wf, plan, store, live)
    crash_point("claimed")
    base_commit = ws.ensure_branch(wf.integration_branch, wf.base)
    # from now on the branch is conductor's: preflight lets later runs move it
    owned.claim(ws.root, wf.integration_branch, base_commit)
    # last, the one change to the branch: earlier results of what is about to redo
    # leave it (base_commit stays the head before, so rolling this run back restores them)
    to_run = [t for t in plan.selected if t not in skipped]
    take_out_earlier(ws, store, wf, run_id, to_run, log)
    with store.tx():
        # a fresh heartbeat: the runner's start-up grace counts from now, not from the claim
        store.update_run(run_id, base_commit=base_commit, heartbeat=time.time())
        for t, why in skipped.items():
            store.update_task(run_id, t, state="skipped", error=why)
    return skipped


def drive(
    ws: Workspace,
    store: Store,
    run_id: str,
    sinks: list[Sink],
    environ: Mapping[str, str],
    wf: Workflow | None = None,
    plan: Plan | None = None,
    *,
    settings: RunSettings | None = None,
    executor: Executor | None = None,
) -> tuple[str, int]:
    """Drive a recorded run to its end: fresh, detached or resumed alike.

    Takes the run's lock (a second driver is refused), recovers whatever a dead
    runner left, runs, writes the log. Returns (final state, exit code). Without
    ``wf``/``plan`` the run's own workflow file and selection are read again (and its
    configured settings with them); ``executor`` replaces the local one (tests).
    """
    try:
        lock = RunLock(ws.state_dir, run_id).acquire()
    except StoreError:
        _no_runner(ws, store, run_id)
        raise
    become_subreaper()  # orphans of its commands come to this runner, not to init
    try:
        row = store.run(run_id)
        assert row is not None
        if wf is None or plan is None:
            wf, plan, settings = replan(ws, row, environ)
        if row["base_commit"] is None:  # its starter was killed before taking the branch
            _take_branch(ws, store, wf, plan, run_id, bool(json.loads(row["options"]).get("force")))
            row = store.run(run_id) or row
        # a `cancel` that came before this runner took the lock still counts
        state = "cancelling" if row["state"] == "cancelling" else "running"
        store.update_run(run_id, state=state, pid=os.getpid(), heartbeat=time.time(),
                         finished=None, reason=None)  # fmt: skip
        how = _How(settings or RunSettings(), executor or LocalExecutor())
        return _drive(ws, store, row, wf, plan, sinks, environ, how)
    except StoreError as exc:  # the run had started: exit 1, resumable (README)
        exc.exit_code = EXIT_FAILED
        raise
    finally:
        lock.release()


def _no_runner(ws: Workspace, store: Store, run_id: str) -> None:
    """The runner could not take its lock (a read-only or full `.conductor`): the run is
    interrupted now, not after the start grace, so `run` again is not refused as live."""
    row = store.run(run_id)
    if row is not None and row["state"] in RUN_LIVE and not lock_held(ws.state_dir, run_id):
        with contextlib.suppress(StoreError):  # the store's own fault is said elsewhere
            store.update_run(run_id, state="interrupted")


def replan(
    ws: Workspace, row: RunRow, environ: Mapping[str, str]
) -> tuple[Workflow, Plan, RunSettings]:
    """The workflow, selection and settings a recorded run was started with."""
    import dataclasses

    from conductor.plan.planner import make_plan
    from conductor.spec.config import configured, run_settings
    from conductor.spec.load import load_workflow

    loaded = dataclasses.replace(load_workflow(ws.root / row["workflow"]), repo_dir=ws.root)
    wf, cfg = configured(loaded, {}, environ)
    sel = json.loads(row["options"]).get("selection", {})
    plan = make_plan(wf, groups=sel.get("groups", ()), tasks=sel.get("tasks", ()),
                     with_deps=bool(sel.get("with_deps")))  # fmt: skip
    return wf, plan, run_settings(cfg)


@dataclass(frozen=True)
class _How:
    """How this process drives the run: its settings and where commands run."""

    settings: RunSettings
    executor: Executor


def _drive(ws: Workspace, store: Store, row: RunRow, wf: Workflow, plan: Plan,
           sinks: list[Sink], environ: Mapping[str, str], how: _How,
           ) -> tuple[str, int]:  # fmt: skip
    from conductor.report import log as report
    from conductor.run.context import RunContext
    from conductor.state.events import Emitter

    run_id = row["id"]
    opts = json.loads(row["options"])
    secrets = resolve(wf, environ)
    emit = Emitter(store, run_id, secrets.redact)
    emit.sinks.extend(sinks)
    ctx = RunContext(
        wf, ws, store, run_id, secrets, emit,
        # so `conductor progress` inside an agent finds the store
        executor=how.executor, settings=how.settings,
        base_env=with_ceiling({**environ, "CONDUCTOR_STATE_DIR": str(ws.state_dir)},
                              str(Layout(ws.state_dir).worktrees_home)),
    )  # fmt: skip
    extras = _observers(ctx, plan)
    stop = Deferred()  # a Ctrl-C during recovery is held, then handed to the runner
    restore = install_signals(stop)
    try:
        runner = _prepare_runner(ctx, plan, opts)
        stop.attach(runner.interrupt)
        final = runner.run()
    finally:
        restore()
        extras.log.close()
    if final == "succeeded":
        try:
            tidy(ws, store, run_id, wf.workspace.keep)
        except ConductorError as exc:  # leftovers are for `conductor clean`, not a failure
            emit("task_warning", None, warning=f"cleanup incomplete: {exc}")
    log = report.write_log(store, run_id, wf, ws)
    report.write_step_summary(store, run_id, wf, log=log)
    emit("log_written", None, path=str(log))
    if not extras.hooks.close(timeout=60):
        emit("hook_failed", None, level="warning", message="hooks still running after 60s")
    sweep(f"{run_id}/", 1.0)  # nothing this run started outlives it (a hook past 60 s)
    return final, exit_code(final)


@dataclass
class _Observers:
    hooks: HookSink
    log: LogWriter


def _observers(ctx: RunContext, plan: Plan) -> _Observers:
    """Hooks, the runner's debug log, the live execution log and (when the standard
    OTEL_* variables ask for them) OpenTelemetry traces, subscribed to events."""
    from conductor.report import tracing
    from conductor.report.logwriter import LogWriter
    from conductor.run.debuglog import event_logger, setup_runner_log
    from conductor.run.hooks import HookSink

    root = ctx.ws.root

    def warn(kind: str, message: str) -> None:
        ctx.emit("hook_failed", None, level="warning", hook=kind, message=message)

    hooks = HookSink(ctx.wf, warn, selected=plan.selected, cwd=root)
    hooks.redact = ctx.secrets.redact
    logger = setup_runner_log(ctx.ws.state_dir, ctx.ws.git_version, redact=ctx.secrets.redact)
    log = LogWriter(ctx.store, ctx.run_id, ctx.wf, ctx.ws)
    ctx.emit.sinks.extend([hooks, event_logger(logger), log])
    ctx.tracing = tracing.subscribe(ctx.emit, ctx.wf, ctx.base_env)
    return _Observers(hooks, log)


def _prepare_runner(ctx: RunContext, plan: Plan, opts: Mapping[str, Any]) -> Runner:
    """Recover what a dead runner left, then a Runner that continues from the store."""
    from conductor.run.conditions import restore_skips
    from conductor.run.policies import load_policy
    from conductor.run.recovery import recover
    from conductor.run.storewatch import GuardedRunner

    store, run_id, wf = ctx.store, ctx.run_id, ctx.wf
    fresh = not store.attempts(run_id)
    # before recovery prunes worktrees: a pooled one a crash left half moved is put right
    ctx.ws.open_pool(int(opts.get("concurrency") or wf.concurrency))
    rec = recover(ctx.ws, store, run_id, wf.integration_branch, wf.workspace.keep)
    if fresh:
        ctx.emit.replay()  # e.g. the earlier results this run took out before it started
        for row_t in store.tasks(run_id):
            if row_t["state"] == "skipped":
                ctx.emit("task_skipped", row_t["task_id"], reason=row_t["error"])
    sched = _scheduler(wf, plan, opts, rec.states, _passed_gates(store, run_id))
    sched.policy = load_policy(wf.policy, ctx.ws.root)  # preflight has tried it already
    restore_skips(store, run_id, sched)
    runner = GuardedRunner(ctx, sched, fail_fast=bool(opts.get("fail_fast")))
    for t in sched.selected:
        runner.books[t].attempts = rec.attempts.get(t, 0)
        runner.books[t].failures = rec.failures.get(t, 0)
    return runner


def _passed_gates(store: Store, run_id: str) -> set[str]:
    rows = store.events(run_id)
    return {str(e["data"]["group"]) for e in rows
            if e["kind"] == "gate_passed" and e["data"].get("group")}  # fmt: skip


def tidy(ws: Workspace, store: Store, run_id: str, keep: str) -> None:
    """After a successful run: drop the pre refs and the merged attempts' branches.

    Failed attempts' branches stay (their work is nowhere else); with `keep: always`
    the worktrees, and so their branches, stay too.
    """
    ws.delete_refs(refs.run_prefix(run_id))
    if keep != "always":
        merged = [a["branch"] for a in store.attempts(run_id)
                  if a["state"] == "succeeded" and a["branch"]]  # fmt: skip
        ws.delete_branches(merged)


def _scheduler(wf: Workflow, plan: Plan, opts: Mapping[str, Any], states: Mapping[str, str],
               passed: set[str]) -> Scheduler:  # fmt: skip
    from conductor.plan.scopes import overlap
    from conductor.run.scheduler import Scheduler

    sched = Scheduler(
        wf, plan.selected, {t: plan.wave_of(t) for t in plan.selected},
        remaining_path_hours(plan), strategy=opts.get("strategy") or wf.strategy,
        concurrency=opts.get("concurrency") or wf.concurrency, overlap=overlap,
    )  # fmt: skip
    for t in plan.selected:
        # a skipped task counts as done for its dependents
        st = states.get(t, "pending")
        sched.set(t, "succeeded" if st == "skipped" else st)
    for g in sched.gates:
        members = [t for t in plan.selected if wf.tasks[t].group == g]
        if g in passed or (members and all(states.get(t) == "skipped" for t in members)):
            sched.gates[g] = "passed"
    return sched
