"""One attempt of one task: worktree → setup → agent → commit → checks → merge.

Runs on a worker thread. Every step is recorded before the next one relies on it,
and the agent's work is committed on the attempt branch whatever happens next, so
no attempt's work is ever lost.
"""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING

from conductor.agents import profiles as agents
from conductor.errors import ConductorError, Rejected, StoreError
from conductor.exec.base import Executor, Limits, ProcessResult, Request
from conductor.exec.sweep import new_mark
from conductor.git import refs
from conductor.git.guard import Pinned, Snapshot, repair, tampering
from conductor.git.indexfile import IndexMark
from conductor.git.worktrees import Taken
from conductor.run import sandboxing, usage, validators
from conductor.run.faults import crash_point
from conductor.run.merging import hold, merge_result
from conductor.run.outcome import Outcome, Prior, trailers
from conductor.run.outputs import collect, fresh_file, upstream, upstream_values
from conductor.run.placeholders import fill
from conductor.run.progress import ProgressSpool
from conductor.state.storefaults import translate

if TYPE_CHECKING:
    from pathlib import Path

    from conductor.exec.sandbox import SandboxPolicy
    from conductor.run.context import RunContext
    from conductor.spec.model import Task


class Attempt:
    def __init__(self, ctx: RunContext, task: Task, n: int, prior: Prior) -> None:
        self.ctx, self.task, self.n, self.prior = ctx, task, n, prior
        self.tid = task.id
        self.worktree = ctx.layout.attempt_worktree(ctx.run_id, task.id, n)
        self.branch = refs.attempt_branch(ctx.wf.integration_branch, ctx.run_id, task.id, n)
        self.log_path = ctx.layout.attempt_log(ctx.run_id, task.id, n)
        self.start_sha = ""
        self.post: str | None = None
        self.changed: list[str] = []
        self.cancel = ctx.cancel_event(task.id)
        # carried by every process of this attempt: swept when each of its commands ends
        self.mark = new_mark(ctx.run_id, task.id, str(n))
        self.session_id: str | None = None
        self.pinned: Pinned | None = None  # the attempt's git, named explicitly
        self.before: Snapshot | None = None  # the refs the agent must not move
        self.index_mark: IndexMark | None = None  # its index before setup and agent ran
        self.misuse: list[str] = []  # what the agent did to git outside its attempt
        self.taken = Taken()  # how the worktree was had: fresh, or from the pool

    def update(self, **fields: object) -> None:
        self.ctx.store.update_attempt(self.ctx.run_id, self.tid, self.n, **fields)

    def run(self) -> Outcome:
        try:
            if self.ctx.wf.pool(self.task.pool).executor == "ray":  # many machines
                from conductor.run.remote_attempt import run_remote

                return run_remote(self)
            self._open()
            return self._work()
        except StoreError as exc:  # the store failed, not the work: keep it, stop the run
            self._salvage()
            return Outcome(self.tid, self.n, False, str(exc), interrupted=True,
                           result_commit=self.post, extras={"store_fault": exc})  # fmt: skip
        except Rejected as exc:
            return self._fail(exc.reason, exc.output, exc.retriable)
        except ConductorError as exc:  # git or filesystem trouble: retriable
            return self._fail(str(exc), "", True)

    def _salvage(self) -> None:
        """Commit whatever a failed attempt left, so no work is lost."""
        if self.post is not None or not self.worktree.is_dir():
            return
        try:
            tr = trailers(self.ctx, self.task, self.n, "error")
            self.post = self.ctx.ws.commit_all(
                self.worktree, f"conductor: {self.tid} attempt {self.n} (failed)", "", tr,
                pinned=self.pinned,
            )  # fmt: skip
            self.update(post_commit=self.post)
        except ConductorError:
            pass  # the worktree itself is broken; its files stay on disk for inspection

    def _open(self) -> None:
        ws, ctx = self.ctx.ws, self.ctx
        self.start_sha = ws.branch_head(ctx.wf.integration_branch) or ""
        tree_start = self.start_sha
        if self.prior.session_id and self.prior.commit and self.prior.diff_base:
            tree_start, self.start_sha = self.prior.commit, self.prior.diff_base
        ctx.store.add_attempt(
            ctx.run_id,
            self.tid,
            self.n,
            state="running",
            worktree=str(self.worktree),
            branch=self.branch,
            pre_commit=self.start_sha,
            log_path=str(self.log_path),
            host=socket.gethostname(),  # a remote executor records its node instead
            pool=self.task.pool,
        )
        space = ctx.wf.workspace
        self.taken = ws.take_worktree(
            self.worktree, self.branch, tree_start,
            pre_ref=refs.pre_ref(ctx.run_id, self.tid, self.n),
            copy=space.copy, symlink=space.symlink, keep=space.reuse.keep,
            key_files=space.reuse.key, salt="\n".join(space.setup),
        )  # fmt: skip
        crash_point("worktree")
        self.pinned = ws.pin_attempt(self.worktree, self.branch)
        ctx.emit(
            "task_started",
            self.tid,
            attempt=self.n,
            base=self.start_sha[:12],
            worktree=str(self.worktree),
            agent=self.task.agent,
        )

    def _work(self) -> Outcome:
        self.task = fill(self.ctx, self.task)  # what upstream tasks produced, and env
        self.before = self.ctx.ws.snapshot()
        self.index_mark = self.ctx.ws.index_mark(self.pinned, self.start_sha)
        self._setup()
        missing = validators.check_inputs(self.task, self.worktree)
        if missing is not None and not missing.ok:
            raise Rejected("inputs missing", missing.output, retriable=False)
        result, report = self._agent()
        post = self._commit(result)
        crash_point("commit")
        # kept, even of a failed attempt
        bad_outputs = collect(self.ctx, self.task, self.n, self.worktree)
        if result.reason == "cancelled" or self.cancel.is_set():
            return self._interrupted(post)
        if self.misuse:
            what = "; ".join(self.misuse)
            raise Rejected(f"the agent reached outside its attempt: it {what}", self._tail())
        if report.rate_limited:
            return self._paused(post, report)
        if result.reason != "exited" or result.exit_code != 0:
            raise Rejected(result.error or f"agent exited {result.exit_code}", self._tail())
        if report.ok is False:
            raise Rejected(f"agent reported an error: {report.error or 'unknown'}", self._tail())
        if bad_outputs is not None:
            raise Rejected(bad_outputs)
        try:
            self._check(post)
        except Rejected:
            if self.cancel.is_set():  # the checks were stopped by cancel or Ctrl-C
                return self._interrupted(post)
            raise
        crash_point("checked")
        return self._merge(post, report.cost_usd)

    def _paused(self, post: str, report: agents.AgentReport) -> Outcome:
        # the limit message is the agent's own text (it may quote a key): stored and shown
        error = self.ctx.secrets.redact(report.error or "rate or usage limit")
        self._close("paused", error)
        return Outcome(self.tid, self.n, False, error, paused=True, resume_at=report.reset_at,
                       result_commit=post, extras={"session_id": self.session_id})  # fmt: skip

    def _interrupted(self, post: str) -> Outcome:
        self._close("interrupted", "interrupted")
        return Outcome(self.tid, self.n, False, "interrupted", interrupted=True, result_commit=post)

    def _setup(self) -> None:
        space = self.ctx.wf.workspace
        if self.taken.setup_kept:  # a pooled worktree kept what setup made (workspace.reuse)
            self.ctx.progress(self.tid, "setup skipped: kept " + ", ".join(space.reuse.keep))
            return
        if space.setup:
            self.ctx.phase(self.tid, "setup")
        for cmd in space.setup:
            res = self._exec(["bash", "-c", cmd], Limits(timeout_s=self.task.timeout_s))
            if res.reason != "exited" or res.exit_code != 0:
                raise Rejected(f"workspace setup `{cmd}` failed", self._tail())
        self.ctx.ws.setup_done(self.worktree, self.taken)

    def _exec(
        self,
        argv: list[str],
        limits: Limits,
        env: dict[str, str] | None = None,
        parser: agents.OutputParser | None = None,
        executor: Executor | None = None,
        sandbox: SandboxPolicy | None = None,
    ) -> ProcessResult:
        """Run one command of this attempt (setup or the agent) in its worktree, logged."""
        ctx = self.ctx

        def on_start(pid: int, started: float) -> None:
            self.update(pid=pid, pid_start=started)
            crash_point("agent")

        def on_line(line: str) -> None:
            step = parser.feed(line) if parser is not None else None
            if step:
                ctx.progress(self.tid, step)
            elif parser is not None and not line.startswith("{"):  # not stream JSON
                ctx.output_line(self.tid, line)

        spool = ProgressSpool(ctx, self.tid, self.worktree)  # `conductor progress` in a sandbox
        request = Request(
            argv,
            cwd=self.worktree,
            env={**(env or ctx.task_env(self.task, self.n, self.worktree)), **spool.env()},
            log_path=self.log_path,
            limits=limits,
            cancel=self.cancel,
            kill_now=ctx.kill_now,
            on_start=on_start,
            on_line=on_line,
            on_tick=spool.ticking(ctx.ticker(self.task)),
            redact=ctx.secrets.redact,
            mark=self.mark,
            busy=parser.in_flight if parser is not None else None,  # a tool call: not idle
            sandbox=sandbox,
        )
        result = (executor or ctx.executor).run(request)
        spool.take(final=True)
        if result.log_fault is not None:  # the disk took no more of its log: stop as on a
            raise translate(self.log_path, result.log_fault)  # full store, work committed
        return result

    def _agent_executor(self, prompt: Path) -> Executor | None:
        """A tmux pane for `executor: tmux` profiles (one per attempt: the prompt is
        the attempt's); None means the run's local executor."""
        profile = agents.profile_for(self.ctx.wf, self.task)
        if profile.executor != "tmux":
            return None
        from conductor.exec.tmux import TmuxExecutor

        t = profile.tmux
        text = t.prompt.replace("{prompt_file}", str(prompt.resolve()))
        text = text.replace("{worktree}", str(self.worktree)).replace("{task_id}", self.tid)
        try:
            return TmuxExecutor(text, t.completion, t.prompt_pattern, idle_s=t.idle_s,
                                send_delay_s=t.send_delay_s,
                                warn=lambda w: self.ctx.emit("task_warning", self.tid,
                                                             warning=w))  # fmt: skip
        except ValueError as exc:
            raise Rejected(f"agent profile {profile.name}: {exc}", retriable=False) from exc

    def _agent(self) -> tuple[ProcessResult, agents.AgentReport]:
        ctx, task = self.ctx, self.task
        ctx.phase(task.id, "agent")
        prompt = ctx.layout.prompt_file(ctx.run_id, task.id, self.n)
        prompt.parent.mkdir(parents=True, exist_ok=True)
        seen = upstream(ctx, task)
        ictx = agents.InstructionContext(
            run_id=ctx.run_id,
            attempt=self.n,
            worktree=self.worktree,
            upstream=ctx.upstream(task, seen),
            values=upstream_values(seen),
            previous_failure=self.prior.failure,
            conflict=self.prior.conflict,
            feedback=self.prior.feedback,
        )
        prompt.write_text(agents.instructions(ctx.wf, task, ictx))
        launch = agents.build_launch(
            ctx.wf,
            task,
            worktree=self.worktree,
            instructions_file=prompt,
            run_id=ctx.run_id,
            attempt=self.n,
            port=ctx.port_for(task.id),
            secrets=ctx.secrets,
            base_env={**ctx.base_env, **ctx.trace_env(task.id, self.n)},
            resume_session=self.prior.session_id,
            output_file=fresh_file(self.worktree),
        )
        sandbox = sandboxing.policy_for(ctx, task, self.worktree, launch.env, prompt)
        result = self._exec(
            launch.argv,
            Limits(timeout_s=task.timeout_s, idle_s=task.idle_timeout_s),
            env=launch.env,
            parser=launch.parser,
            executor=self._agent_executor(prompt),
            sandbox=sandbox,
        )
        sandboxing.record(ctx, task.id, self.n, sandbox, result)
        report = launch.parser.result()
        if launch.parser.session_totals:
            usage.own_share(report, self.prior.session_id, self.n,
                            ctx.store.attempts(ctx.run_id, self.tid))  # fmt: skip
        spent = usage.usage_fields(report, ctx.secrets.redact)
        self.update(exit_code=result.exit_code, session_id=report.session_id, **spent)
        self.session_id = report.session_id
        if any(v is not None for v in spent.values()):  # the live view's running total
            ctx.emit("task_usage", self.tid, attempt=self.n, **spent)
        return result, report

    def _guard(self) -> None:
        """Undo what the agent did to git outside its own attempt branch, and remember it:
        the work is still committed (on the attempt branch), then the attempt fails."""
        if self.pinned is None or self.before is None:
            return
        self.misuse = tampering(self.pinned)
        if self.misuse:
            repair(self.pinned)
        ws, branch = self.ctx.ws, self.ctx.wf.integration_branch
        self.misuse += ws.restore(self.before, self.pinned, branch, reached_out=bool(self.misuse))
        if self.misuse:
            self.ctx.emit("task_warning", self.tid, level="error", attempt=self.n,
                          warning="git outside the attempt: " + "; ".join(self.misuse))  # fmt: skip

    def _commit(self, result: ProcessResult) -> str:
        self._guard()
        status: str = "ok" if result.ok else result.reason
        if result.reason == "exited" and result.exit_code != 0:
            status = f"exit {result.exit_code}"
        body = (f"Agent exited: {result.reason} (code {result.exit_code}) after "
                f"{result.duration_s:.1f}s.")  # fmt: skip
        tr = trailers(self.ctx, self.task, self.n, status)
        tr["Conductor-Duration"] = f"{result.duration_s:.1f}s"
        # commit messages are pushed and shared: they are masked like every other sink
        redact = self.ctx.secrets.redact
        tr = {k: redact(v) for k, v in tr.items()}
        done = self.ctx.ws.commit_work(self.worktree, f"conductor: {self.tid} attempt {self.n}",
                                       redact(body), tr, self.pinned, start=self.start_sha,
                                       mark=self.index_mark)  # fmt: skip
        self.changed, self.post = done.paths, done.sha  # the paths: for `upstream`, stored
        self.update(post_commit=done.sha, files_changed=len(done.paths), insertions=done.insertions,
                    deletions=done.deletions, changed_files=json.dumps(done.paths))  # fmt: skip
        return done.sha

    def _check(self, post: str) -> None:
        ctx = self.ctx
        ctx.set_state(self.tid, "validating")
        changed = self.changed
        env = ctx.task_env(self.task, self.n, self.worktree)
        how = validators.CheckEnv(env, self.task.timeout_s or validators.DEFAULT_TIMEOUT_S,
                                  ctx.secrets.redact, ctx.executor, self.cancel, ctx.kill_now,
                                  self.mark)  # fmt: skip
        # outputs are looked for in the commit: an ignored file on disk never gets merged
        committed = validators.Committed(ctx.ws.common_dir, post)
        results = validators.run_checks(self.task, self.worktree, changed, how, committed)
        self.update(checks=json.dumps([r.__dict__ for r in results]))
        failed = [r for r in results if not r.ok]
        for r in results:
            ctx.emit(
                "validation_passed" if r.ok else "validation_failed",
                self.tid,
                check=r.name,
                attempt=self.n,
            )
        if failed:
            raise Rejected(
                "validation failed: " + ", ".join(r.name for r in failed),
                validators.summarize_failures(failed),
            )

    def _merge(self, post: str, cost: float | None) -> Outcome:
        if self.task.approve:  # a person looks first: the runner merges once approved
            return hold(self, post, cost)
        self.ctx.set_state(self.tid, "merging")
        out = merge_result(self.ctx, self.task, self.n, post, self.start_sha, cost)
        self._close("succeeded" if out.ok else "failed", None if out.ok else out.error)
        return out

    def _fail(self, reason: str, output: str, retriable: bool) -> Outcome:
        # the reason may quote the agent or an executor error: stored, exported and shown
        redact = self.ctx.secrets.redact
        reason, output = redact(reason), redact(output)
        self._salvage()
        self._close("failed", reason)
        return Outcome(
            self.tid,
            self.n,
            False,
            reason,
            retriable=retriable,
            output=output,
            result_commit=self.post,
            extras={"session_id": self.session_id, "diff_base": self.start_sha},
        )

    def _close(self, state: str, error: str | None) -> None:
        self.update(state=state, finished=time.time(), error=error)
        self.ctx.release(self.tid)

    def _tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
