"""The runner's side of an attempt on a Ray pool (``executor: ray``).

:class:`~conductor.run.attempt.Attempt` hands its run to :func:`run_remote` when the
task's pool is a Ray pool. Everything the store, the events and the git model see is the
same as for a local attempt; only where the work happens differs:

1. open: the attempt row, the ``pre`` ref (the commit the worktree starts from) and
   ``task_started`` — no local worktree (none is needed to check or merge a commit);
2. the job (``conductor.run.remote_work.RemoteJob``): the filled task, the instructions
   written here (upstream summaries and values come from the store), the trailers, the
   ``workspace.copy`` files, the secrets the task's ``env`` expands;
3. submit it with the pool's resources and labels as Ray options, then follow it until it
   ends: log lines go to the attempt's log here as they arrive (``conductor logs -f``
   works), steps and progress to the store, ticks to the timeout and idle warnings; the
   worker's "which commits do you need?" is answered with an incremental bundle; a cancel,
   Ctrl-C or the runner's own deadline is passed on as the worker's stop signal;
4. the result: the worker's whole log replaces the streamed copy, its bundle is fetched
   into the attempt branch here, and then the same decisions as a local attempt's, in the
   same order — interrupted, git misuse, usage limit, agent failure, output values, checks
   — with the outputs and ``touches`` checked again here, on the fetched commit (what will
   be merged), before the merge (or the hold for approval).

A node that dies mid-task (or a worker process Ray loses) ends the attempt as
``interrupted`` with an infrastructure error: the engine retries it without counting it
against the task's ``retries`` (``Outcome.extras["infra"]``, see retries.py), and Ray
places the retry on a live node that fits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from conductor.agents import profiles as agents
from conductor.errors import ConductorError, InfraError, Rejected
from conductor.git import bundles, refs
from conductor.remote import RAY_HOST
from conductor.remote.call import Call, NodeLost, live_nodes, submit
from conductor.remote.cluster import fits
from conductor.remote.hub import END
from conductor.remote.placement import needs, task_options
from conductor.run import usage, validators
from conductor.run.outcome import Outcome, trailers
from conductor.run.outputs import record, upstream, upstream_values
from conductor.run.placeholders import fill
from conductor.run.remote_checks import clear_when_fit
from conductor.run.remote_work import WORKTREE_TOKEN, RemoteJob, RemoteResult, execute

if TYPE_CHECKING:
    from conductor.run.attempt import Attempt
    from conductor.run.context import RunContext
    from conductor.spec.model import Task

POLL_S = 0.25  # longest wait for the worker's messages before checking cancel again
DEADLINE_MARGIN_S = 120.0  # past the task's timeout (the worker enforces it): stop it here
STOP_WAIT_S = 30.0  # a stopped worker that has not returned by then: Ray kills it
FIT_CHECK_S = 10.0  # not placed yet: this often, ask whether any live node fits at all
# attempts.host of a remote attempt: "ray" until placed, then "ray:<node id>" (recovery
# looks for it: a runner that died leaves remote processes to stop on the cluster)


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a Ray pool's tasks may run, and how the runner reaches the cluster."""

    pool: str
    resources: Mapping[str, float]
    labels: Mapping[str, str]
    address: str = "auto"
    worker_dir: str = ""


def placement(ctx: RunContext, task: Task) -> Placement:
    """The task's pool as a placement, with the run's `ray.*` settings."""
    pool, settings = ctx.wf.pool(task.pool), ctx.settings
    return Placement(pool.name, pool.resources, pool.labels, settings.ray_address,
                     settings.ray_worker_dir)  # fmt: skip


def run_remote(att: Attempt, where: Placement | None = None) -> Outcome:
    """Attempt ``att`` on the cluster; an ``Outcome`` as a local attempt gives one (a
    ``Rejected`` raised here is handled by ``Attempt.run`` as for a local attempt)."""
    follow = _Remote(att, where or placement(att.ctx, att.task))
    try:
        result = follow.start()
    except NodeLost as exc:
        return follow.lost(str(exc))
    try:
        return follow.finish(result)
    except Rejected:
        follow.materialize(failed=True)
        raise


class _Remote:
    def __init__(self, att: Attempt, where: Placement) -> None:
        self.att, self.where, self.ctx = att, where, att.ctx
        self.tree_start = ""
        self.refs: list[Any] = []  # object-store refs kept alive until the attempt ends
        self.tick = att.ctx.ticker(att.task)
        self.log: IO[str] | None = None
        self.stopped = 0  # the stop level sent: 0 none, 1 cancel, 2 kill
        self.stop_sent_at = 0.0
        self.node = ""  # the Ray node it runs on, once the worker said
        self.validating = False  # the task is in state validating (said once)
        self.ended = False  # the worker said its result is on the way

    # -- start ------------------------------------------------------------------

    def start(self) -> RemoteResult:
        self._open()
        job = self._job()
        key = f"{self.ctx.run_id}/{self.att.tid}/{self.att.n}"
        try:
            call = submit(self.where.address, self.ctx.run_id, key, execute, job,
                          task_options(self.where.resources, self.where.labels))  # fmt: skip
        except InfraError as exc:  # the cluster out of reach: not the task's fault either
            raise NodeLost(str(exc)) from exc
        try:
            return self._follow(call)
        finally:
            if self.log is not None:
                self.log.close()

    def _open(self) -> None:
        att, ctx = self.att, self.ctx
        att.start_sha = ctx.ws.branch_head(ctx.wf.integration_branch) or ""
        self.tree_start = att.start_sha
        prior = att.prior
        if prior.session_id and prior.commit and prior.diff_base:
            self.tree_start, att.start_sha = prior.commit, prior.diff_base
        ctx.store.add_attempt(ctx.run_id, att.tid, att.n, state="running",
                              worktree=str(att.worktree), branch=att.branch,
                              pre_commit=att.start_sha, log_path=str(att.log_path),
                              host=RAY_HOST, pool=self.where.pool)  # fmt: skip
        ctx.ws.set_ref(self._pre_ref(), self.tree_start)
        ctx.emit("task_started", att.tid, attempt=att.n, base=att.start_sha[:12],
                 worktree=str(att.worktree), agent=att.task.agent, executor="ray",
                 pool=self.where.pool)  # fmt: skip

    def _pre_ref(self) -> str:
        return refs.pre_ref(self.ctx.run_id, self.att.tid, self.att.n)

    def _job(self) -> RemoteJob:
        att, ctx = self.att, self.ctx
        att.task = task = fill(ctx, att.task)
        seen = upstream(ctx, task)
        ictx = agents.InstructionContext(
            run_id=ctx.run_id, attempt=att.n, worktree=Path(WORKTREE_TOKEN),
            upstream=ctx.upstream(task, seen), values=upstream_values(seen),
            previous_failure=att.prior.failure, conflict=att.prior.conflict,
            feedback=att.prior.feedback,
        )  # fmt: skip
        text = agents.instructions(ctx.wf, task, ictx)
        prompt = ctx.layout.prompt_file(ctx.run_id, task.id, att.n)  # kept here for the record
        prompt.parent.mkdir(parents=True, exist_ok=True)
        prompt.write_text(text)
        tr = trailers(ctx, task, att.n, "")
        tr.pop("Conductor-Status")
        # only what a worker needs of the workflow: its agent profiles, not every task
        wf = dataclasses.replace(ctx.wf, tasks={task.id: task})
        return RemoteJob(
            run_id=ctx.run_id, wf=wf, task=task, n=att.n, branch=att.branch,
            pre_ref=self._pre_ref(), start=self.tree_start, diff_base=att.start_sha,
            instructions=text, secrets=ctx.secrets, mark=att.mark, trailers=tr,
            env=ctx.trace_env(task.id, att.n), setup=tuple(ctx.wf.workspace.setup),
            copies=bundles.shipped_copies(ctx.ws.root, ctx.wf.workspace.copy),
            resume_session=att.prior.session_id, worker_dir=self.where.worker_dir,
        )  # fmt: skip

    # -- while it runs ----------------------------------------------------------

    def _follow(self, call: Call) -> RemoteResult:
        t0 = next_fit_check = time.monotonic()
        while True:
            done = call.done()
            items, asks = call.messages(0.0 if done else POLL_S)
            self._take(items)
            for question in asks:
                self._answer(call, question)
            if done or self.ended:
                break
            now = time.monotonic()
            self._stop_if_needed(call, now - t0)
            if not self.node and now >= next_fit_check + FIT_CHECK_S:
                next_fit_check = now
                self._give_up_if_unplaceable(call)
        result = call.result()
        assert isinstance(result, RemoteResult)
        return result

    def _take(self, items: list[tuple[Any, ...]]) -> None:
        ctx, tid = self.ctx, self.att.tid
        for kind, *data in items:
            if kind == "log":
                self._log_line(str(data[0]))
                if data[1]:
                    ctx.output_line(tid, str(data[0]))
            elif kind == "step":
                ctx.progress(tid, str(data[0]))
            elif kind == "progress":
                percent, message = data
                step = ctx.secrets.redact(message) if message is not None else None
                ctx.store.update_task(ctx.run_id, tid, progress=percent, step=step)
                ctx.emit("task_progress", tid, percent=percent, message=step)
            elif kind == "tick":
                self.tick(float(data[0]), float(data[1]))
            elif kind == "node":
                self._placed(str(data[0]), str(data[1]))
            elif kind == END:
                self.ended = True
            elif kind == "phase" and data[0] == "validate" and not self.validating:
                self.validating = True  # the worker runs the task's checks
                ctx.set_state(tid, "validating")
            elif kind == "phase" and data[0] != "validate":
                ctx.phase(tid, str(data[0]))  # setup, agent (the trace's phase spans)

    def _placed(self, node: str, host: str) -> None:
        self._log_line(f"# conductor: running on {host} (ray node {node})")
        self.node = node
        self.ctx.pools_down.pop(self.where.pool, None)
        self.att.update(host=f"{RAY_HOST}:{node}")

    def _log_line(self, line: str) -> None:
        """Streamed lines, for `conductor logs -f`; replaced by the worker's log at the end."""
        if self.log is None:
            self.att.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log = open(self.att.log_path, "a", encoding="utf-8")  # noqa: SIM115
        self.log.write(line + "\n")
        self.log.flush()

    def _answer(self, call: Call, question: Any) -> None:
        """The worker's "which commits do you need?": the start commit minus its haves."""
        kind, haves = question
        git_dir = self.ctx.ws.common_dir
        have = bundles.known(git_dir, list(haves)) if kind == "bundle" else []
        if self.tree_start in have:
            call.answer([None])
            return
        with tempfile.TemporaryDirectory(prefix="conductor-ship-") as tmp:
            path = Path(tmp) / "out.bundle"
            if not bundles.create(git_dir, path, self._pre_ref(), have):
                call.answer([None])
                return
            ref = call.put(path.read_bytes())
        self.refs.append(ref)
        call.answer([ref])

    def _give_up_if_unplaceable(self, call: Call) -> None:
        """Not placed yet, and no live node could ever take it (its nodes died): Ray would
        hold it forever. Say the pool is down (its tasks wait; with nothing else to do the
        run ends in a deadlock alert naming it) and end the attempt as lost."""
        where = self.where
        if any(fits(n, needs(where.resources), where.labels) for n in live_nodes(where.address)):
            return
        why = f"no live Ray node fits pool {where.pool}"
        if where.pool not in self.ctx.pools_down:
            self.ctx.pools_down[where.pool] = why
            clear_when_fit(self.ctx.pools_down, where.pool, where.resources, where.labels,
                           FIT_CHECK_S)  # fmt: skip
        call.abandon()
        raise NodeLost(why)

    def _stop_if_needed(self, call: Call, elapsed: float) -> None:
        """Pass cancel / Ctrl-C (second: kill) and the runner's own deadline to the worker;
        one that does not return after a stop is killed by Ray."""
        timeout = self.att.task.timeout_s
        late = timeout is not None and elapsed > timeout + DEADLINE_MARGIN_S
        level = 2 if (self.ctx.kill_now.is_set() or late) else 1 if self.att.cancel.is_set() else 0
        if level > self.stopped:
            call.stop(hard=level == 2)
            self.stopped, self.stop_sent_at = level, time.monotonic()
        elif self.stopped and time.monotonic() - self.stop_sent_at > STOP_WAIT_S:
            call.abandon()

    # -- the result -------------------------------------------------------------

    def lost(self, error: str) -> Outcome:
        """The node or worker died: no work came back; retried without costing a retry
        (interrupted, not failed: a resumed run does not count it either)."""
        att = self.att
        if att.cancel.is_set():  # stopped by cancel or Ctrl-C, then killed by Ray
            return att._interrupted(att.post or "")
        att.update(state="interrupted", finished=time.time(), error=error)
        att.ctx.release(att.tid)
        return Outcome(att.tid, att.n, False, error, retriable=True,
                       extras={"infra": True, "session_id": att.prior.session_id,
                               "diff_base": att.start_sha})  # fmt: skip

    def finish(self, result: RemoteResult) -> Outcome:
        att = self.att
        self._replace_log(result.log)
        post = self._fetch(result)
        if result.rejected is not None:
            reason, output, retriable = result.rejected
            if att.cancel.is_set():
                return att._interrupted(post)
            raise Rejected(reason, output or att._tail(), retriable)
        process, report = result.process, result.report
        assert process is not None and report is not None  # the agent ran
        self._usage(result, report)
        bad_outputs = result.values_error or record(att.ctx, att.task, att.n, result.values)
        if process.reason == "cancelled" or att.cancel.is_set():
            return att._interrupted(post)
        if result.misuse:
            what = "; ".join(result.misuse)
            raise Rejected(f"the agent reached outside its attempt: it {what}", att._tail())
        if report.rate_limited:
            return att._paused(post, report)
        if not process.ok:
            raise Rejected(process.error or f"agent exited {process.exit_code}", att._tail())
        if report.ok is False:
            raise Rejected(f"agent reported an error: {report.error or 'unknown'}", att._tail())
        if bad_outputs is not None:
            raise Rejected(bad_outputs)
        self._check(post, result.checks or [])
        self.materialize(failed=False)
        return att._merge(post, report.cost_usd)

    def _replace_log(self, data: bytes) -> None:
        """The worker's whole log (headers, footers, every line) over the streamed copy."""
        if not data:
            return
        path = self.att.log_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _fetch(self, result: RemoteResult) -> str:
        """The worker's bundle into the attempt branch here; the attempt's post commit."""
        att, ws = self.att, self.ctx.ws
        if result.post is None or not result.bundle:
            return ""
        with tempfile.TemporaryDirectory(prefix="conductor-back-") as tmp:
            path = Path(tmp) / "back.bundle"
            path.write_bytes(result.bundle)
            ref = refs.branch_ref(att.branch)
            post = bundles.fetch(ws.common_dir, path, ref, ref)
        att.post, att.changed = post, result.changed
        att.update(post_commit=post, files_changed=len(result.changed),
                   insertions=result.insertions, deletions=result.deletions,
                   changed_files=json.dumps(result.changed))  # fmt: skip
        return post

    def _usage(self, result: RemoteResult, report: agents.AgentReport) -> None:
        att, ctx = self.att, self.ctx
        if result.session_totals:
            usage.own_share(report, att.prior.session_id, att.n,
                            ctx.store.attempts(ctx.run_id, att.tid))  # fmt: skip
        spent = usage.usage_fields(report, ctx.secrets.redact)
        exit_code = result.process.exit_code if result.process is not None else None
        att.update(exit_code=exit_code, session_id=report.session_id, **spent)
        att.session_id = report.session_id
        if any(v is not None for v in spent.values()):
            ctx.emit("task_usage", att.tid, attempt=att.n, **spent)

    def _check(self, post: str, remote: list[validators.CheckResult]) -> None:
        """The worker's checks, with outputs and ``touches`` checked again on the fetched
        commit: a failure found here is what counts (it is what would be merged)."""
        att, ctx = self.att, self.ctx
        if not self.validating:
            ctx.set_state(att.tid, "validating")
        changed = ctx.ws.changed_files(att.start_sha, post)
        bare = dataclasses.replace(att.task, validate=())
        here = validators.run_checks(bare, att.worktree, changed, validators.CheckEnv({}),
                                     validators.Committed(ctx.ws.common_dir, post))  # fmt: skip
        failed_here = {r.name: r for r in here if not r.ok}
        results = [failed_here.pop(r.name, r) for r in remote] + list(failed_here.values())
        att.update(checks=json.dumps([r.__dict__ for r in results]))
        for r in results:
            ctx.emit("validation_passed" if r.ok else "validation_failed", att.tid,
                     check=r.name, attempt=att.n)  # fmt: skip
        failed = [r for r in results if not r.ok]
        if failed:
            raise Rejected("validation failed: " + ", ".join(r.name for r in failed),
                           validators.summarize_failures(failed))  # fmt: skip

    def materialize(self, failed: bool) -> None:
        """A local worktree of the fetched commit where a local attempt would keep one
        (``keep: always``, ``on_failure`` when it failed, approval): for the reviewer."""
        att, keep = self.att, self.ctx.wf.workspace.keep
        wanted = keep == "always" or (failed and keep == "on_failure") or att.task.approve
        if wanted and att.post:
            with contextlib.suppress(ConductorError):
                self.ctx.ws.add_worktree(att.worktree, att.branch, att.post)
