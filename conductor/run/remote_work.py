"""One remote attempt's work, on the Ray worker node that runs it (``executor: ray``).

Ray calls :func:`execute` there (through ``conductor.remote.worker.serve``) with the job
the runner made (:class:`RemoteJob`) and the link to the run's hub. No filesystem is
shared with the runner; the worker has conductor installed (the same version), and does
with conductor's own code what a local attempt does:

1. the repository: it tells the runner which commits its cache already has and fetches
   the (incremental) bundle the runner answers with (``conductor.git.bundles.Cache``);
2. a worktree on the attempt branch in that cache, the ``workspace.copy`` files the runner
   sent, ``workspace.setup``, the inputs check;
3. the agent: the instructions the runner wrote (the worktree path filled in here), the
   launch from the same preset, run by the LocalExecutor with the same limits, process
   marker and containment (the marker sweep, stopping the whole tree). Its lines, steps,
   progress and ticks stream to the runner; the runner's stop (cancel, Ctrl-C) sets the
   executor's own cancel and kill events, so it reaches every process of the attempt;
4. the commit of everything the agent left, with conductor's trailers, after putting back
   what it did to the worktree's ``.git`` (the runner's repository is out of its reach);
5. the task's validators, here, where the toolchain they need lives — only when the agent
   succeeded, as locally;
6. back to the runner: the attempt branch as a bundle, the whole log, how the agent ended,
   its telemetry, its output values and the checks (:class:`RemoteResult`).

What the result means — retry, pause, fail, merge — the runner decides, as for a local
attempt (``conductor.run.remote_attempt``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conductor.agents import profiles as agents
from conductor.errors import ConductorError
from conductor.exec.base import Limits, ProcessResult, Request
from conductor.exec.local import LocalExecutor
from conductor.git.bundles import Cache
from conductor.git.env import clean_env
from conductor.git.guard import Pinned, repair, tampering
from conductor.git.prepare import prepare
from conductor.run import validators
from conductor.run.outfile import OutputFileError, read_output_file
from conductor.run.outputs import fresh_file, output_path
from conductor.run.progress import BIN_VAR, conductor_bin
from conductor.state.layout import Layout
from conductor.state.spool import SPOOL_VAR, spool_dir, take_reports

if TYPE_CHECKING:
    from conductor.remote.hub import Link
    from conductor.spec.model import Task, Workflow
    from conductor.spec.secrets import Secrets

WORKER_DIR_VAR = "CONDUCTOR_WORKER_DIR"  # on a worker node: where its cache and worktrees go
WORKTREE_TOKEN = "/@conductor-worktree@"  # the worktree path in instructions the runner wrote


def worker_dir(configured: str = "") -> Path:
    """Where this node keeps its cache: ``ray.worker_dir`` in the runner's config, else the
    node's ``$CONDUCTOR_WORKER_DIR``, else ``$XDG_CACHE_HOME/conductor/worker``."""
    if configured or os.environ.get(WORKER_DIR_VAR):
        return Path(configured or os.environ[WORKER_DIR_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "conductor" / "worker"


@dataclass(frozen=True)
class RemoteJob:
    """Everything a worker needs for one attempt (pickled by Ray; no handle to the store)."""

    run_id: str
    wf: Workflow  # for the agent profile and its preset
    task: Task  # filled: upstream values and env in place
    n: int
    branch: str  # the attempt branch, named as in the runner's repository
    pre_ref: str  # the ref the runner's bundle carries
    start: str  # the commit the worktree starts from
    diff_base: str  # what the task's diff is counted from (see Prior.diff_base)
    instructions: str  # with WORKTREE_TOKEN where the worktree path goes
    secrets: Secrets
    mark: str  # the attempt's process marker
    trailers: dict[str, str]  # Conductor-Status is added here
    env: dict[str, str] = field(default_factory=dict)  # over the node's env (trace context)
    setup: tuple[str, ...] = ()
    copies: dict[str, bytes] = field(default_factory=dict)
    resume_session: str | None = None
    worker_dir: str = ""


@dataclass
class RemoteResult:
    """What came of the attempt on the worker; ``bundle`` carries ``branch`` past ``start``."""

    node: str
    host: str
    rejected: tuple[str, str, bool] | None = None  # (reason, output, retriable) before the agent
    process: ProcessResult | None = None
    report: agents.AgentReport | None = None
    misuse: list[str] = field(default_factory=list)
    post: str | None = None
    changed: list[str] = field(default_factory=list)
    insertions: int = 0
    deletions: int = 0
    values: dict[str, str] = field(default_factory=dict)
    values_error: str | None = None
    checks: list[validators.CheckResult] | None = None  # None: not run
    session_totals: bool = False  # the agent's CLI reports totals since its session began
    bundle: bytes = b""
    log: bytes = b""


def execute(job: RemoteJob, link: Link) -> RemoteResult:
    """The job Ray runs on the node (see the module's docstring)."""
    node, host = link.where()
    link.send("node", node, host)
    cache = Cache.open(worker_dir(job.worker_dir))
    _receive(cache, job, link)
    return _Remote(cache, job, link, RemoteResult(node, host)).run()


def _receive(cache: Cache, job: RemoteJob, link: Link) -> None:
    """Get the attempt's start commit into the cache: ask with what it has, fetch the answer."""
    reply = link.ask(("bundle", cache.haves()))
    data = reply[0] if reply else None
    if data is None:  # the runner found the start among what the cache has
        cache.take(None, job.pre_ref, job.start)
        return
    with tempfile.TemporaryDirectory(prefix="conductor-in-") as tmp:
        path = Path(tmp) / "in.bundle"
        path.write_bytes(data)
        cache.take(path, job.pre_ref, job.start)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Remote:
    def __init__(self, cache: Cache, job: RemoteJob, link: Link, result: RemoteResult) -> None:
        self.cache, self.job, self.link, self.result = cache, job, link, result
        layout = Layout(cache.state_dir)
        self.worktree = layout.attempt_worktree(job.run_id, job.task.id, job.n)
        self.log = layout.attempt_log(job.run_id, job.task.id, job.n)
        self.prompt = layout.prompt_file(job.run_id, job.task.id, job.n)
        self.staging = layout.run_dir(job.run_id) / "copies" / f"{self.worktree.name}"
        self.pinned: Pinned | None = None

    def run(self) -> RemoteResult:
        try:
            self._work()
        except ConductorError as exc:  # git or disk trouble here: retriable, work kept
            self.result.rejected = (str(exc), "", True)
        finally:
            self._close()
        return self.result

    def _work(self) -> None:
        task = self.job.task
        self._open()
        if not self._setup():
            return
        missing = validators.check_inputs(task, self.worktree)
        if missing is not None and not missing.ok:
            self.result.rejected = ("inputs missing", missing.output, False)
            return
        self._agent()
        self._commit()
        self._read_values()
        if self._agent_ok():
            self._check()

    def _open(self) -> None:
        job, cache = self.job, self.cache
        self.log.parent.mkdir(parents=True, exist_ok=True)
        cache.add_worktree(self.worktree, job.branch, job.start)
        for rel, data in job.copies.items():
            dst = self.staging / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
        prepare(self.staging, self.worktree, list(job.copies), [])  # the runner's copies
        self.pinned = cache.pin_attempt(self.worktree, job.branch)

    def task_env(self) -> dict[str, str]:
        """What setup commands and validators see (the node's env, no agent extras)."""
        job = self.job
        env = clean_env({**os.environ, **job.env})
        env.update({"CONDUCTOR_RUN_ID": job.run_id, "CONDUCTOR_TASK_ID": job.task.id,
                    "CONDUCTOR_ATTEMPT": str(job.n), "CONDUCTOR_WORKTREE": str(self.worktree)})
        env.update({k: job.secrets.expand(v) for k, v in job.task.env.items()})
        return env

    def _exec(self, argv: list[str], limits: Limits, env: dict[str, str],
              parser: agents.OutputParser | None = None) -> ProcessResult:  # fmt: skip
        """Run one command of the attempt in its worktree, streaming it to the runner."""
        link = self.link

        def on_line(line: str) -> None:
            step = parser.feed(line) if parser is not None else None
            if step:
                link.send("step", step)
            link.send("log", line, not step and parser is not None and not line.startswith("{"))

        def on_tick(elapsed: float, idle: float) -> None:
            link.latest("tick", elapsed, idle)
            self._progress(final=False)

        spool = {BIN_VAR: conductor_bin(self.cache.state_dir),
                 SPOOL_VAR: str(spool_dir(self.worktree))}  # fmt: skip
        request = Request(
            argv, cwd=self.worktree, env={**env, **spool}, log_path=self.log, limits=limits,
            cancel=link.cancel, kill_now=link.kill_now, on_line=on_line, on_tick=on_tick,
            on_start=lambda pid, _t: link.send("pid", pid), redact=self.job.secrets.redact,
            mark=self.job.mark, busy=parser.in_flight if parser is not None else None,
        )  # fmt: skip
        result = LocalExecutor().run(request)
        self._progress(final=True)
        return result

    def _progress(self, final: bool) -> None:
        """`conductor progress` reports from the attempt's spool, to the runner."""
        for percent, message in take_reports(self.worktree, final):
            self.link.send("progress", percent, message)

    def _setup(self) -> bool:
        if self.job.setup:
            self.link.send("phase", "setup")
        for cmd in self.job.setup:
            res = self._exec(["bash", "-c", cmd], Limits(timeout_s=self.job.task.timeout_s),
                             self.task_env())  # fmt: skip
            if res.reason != "exited" or res.exit_code != 0:
                self.result.rejected = (f"workspace setup `{cmd}` failed", self._tail(), True)
                return False
        return True

    def _agent(self) -> None:
        job, task = self.job, self.job.task
        self.link.send("phase", "agent")
        self.prompt.parent.mkdir(parents=True, exist_ok=True)
        self.prompt.write_text(job.instructions.replace(WORKTREE_TOKEN, str(self.worktree)))
        launch = agents.build_launch(
            job.wf, task, worktree=self.worktree, instructions_file=self.prompt,
            run_id=job.run_id, attempt=job.n, port=_free_port(), secrets=job.secrets,
            base_env={**os.environ, **job.env}, resume_session=job.resume_session,
            output_file=fresh_file(self.worktree),
        )  # fmt: skip
        limits = Limits(timeout_s=task.timeout_s, idle_s=task.idle_timeout_s)
        self.result.process = self._exec(launch.argv, limits, launch.env, launch.parser)
        self.result.report = launch.parser.result()
        self.result.session_totals = launch.parser.session_totals

    def _guard(self) -> None:
        """Put the worktree's `.git` and HEAD back; what the agent did counts against it."""
        if self.pinned is not None:
            self.result.misuse = tampering(self.pinned)
            if self.result.misuse:
                repair(self.pinned)

    def _commit(self) -> None:
        if self.result.post is not None or self.pinned is None or not self.worktree.is_dir():
            return
        self._guard()
        job, res, redact = self.job, self.result.process, self.job.secrets.redact
        status: str = "error" if res is None else ("ok" if res.ok else res.reason)
        if res is not None and res.reason == "exited" and res.exit_code != 0:
            status = f"exit {res.exit_code}"
        body = "" if res is None else (f"Agent exited: {res.reason} (code {res.exit_code}) "
                                        f"after {res.duration_s:.1f}s.")  # fmt: skip
        tr = {**job.trailers, "Conductor-Status": status}
        if res is not None:
            tr["Conductor-Duration"] = f"{res.duration_s:.1f}s"
        subject = f"conductor: {job.task.id} attempt {job.n}" + ("" if res else " (failed)")
        masked = {k: redact(v) for k, v in tr.items()}
        post = self.cache.commit_all(self.worktree, subject, redact(body), masked, self.pinned)
        self.result.post = post
        changed, self.result.insertions, self.result.deletions = self.cache.diff_summary(
            job.diff_base, post
        )
        self.result.changed = changed

    def _read_values(self) -> None:
        path = output_path(self.worktree)
        try:
            self.result.values = read_output_file(path)
        except OutputFileError as exc:
            self.result.values_error = str(exc)
        except OSError as exc:
            self.result.values_error = f"$CONDUCTOR_OUTPUT could not be read: {exc.strerror or exc}"
        with contextlib.suppress(OSError):
            path.unlink()

    def _agent_ok(self) -> bool:
        """Would a local attempt go on to its checks? (The runner decides again.)"""
        r, report = self.result, self.result.report
        return (r.process is not None and r.process.ok and not self.link.cancel.is_set()
                and not r.misuse and r.values_error is None and report is not None
                and not report.rate_limited and report.ok is not False)  # fmt: skip

    def _check(self) -> None:
        task, post = self.job.task, self.result.post or ""
        self.link.send("phase", "validate")
        how = validators.CheckEnv(self.task_env(), task.timeout_s or validators.DEFAULT_TIMEOUT_S,
                                  self.job.secrets.redact, LocalExecutor(), self.link.cancel,
                                  self.link.kill_now, self.job.mark)  # fmt: skip
        committed = validators.Committed(self.cache.common_dir, post)
        self.result.checks = validators.run_checks(task, self.worktree, self.result.changed,
                                                   how, committed)  # fmt: skip

    def _close(self) -> None:
        """Commit what is left (a failed setup's worktree too), ship the branch, tidy up."""
        try:
            with contextlib.suppress(ConductorError):
                self._commit()
            if self.result.post is not None:
                self._ship()
        finally:
            with contextlib.suppress(ConductorError):
                self.cache.remove_worktree(self.worktree, force=True)
            with contextlib.suppress(ConductorError):
                self.cache.delete_branch(self.job.branch)
            with contextlib.suppress(OSError):
                self.result.log = self.log.read_bytes()
            for path in (self.log, self.prompt):
                with contextlib.suppress(OSError):
                    path.unlink()
            shutil.rmtree(self.staging, ignore_errors=True)

    def _ship(self) -> None:
        with tempfile.TemporaryDirectory(prefix="conductor-out-") as tmp:
            path = Path(tmp) / "out.bundle"
            self.cache.ship(path, self.job.branch, self.job.start)
            self.result.bundle = path.read_bytes()
        with contextlib.suppress(ConductorError):
            self.cache.remember(self.result.post or "")

    def _tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def tidy(run_id: str, configured: str = "") -> None:
    """On a node, for `resume`: remove what attempts of a runner that died left in this
    node's cache (their worktrees and attempt branches; their work never went back)."""
    directory = worker_dir(configured)
    if not (directory / "repo" / ".git").is_dir():
        return
    cache = Cache.open(directory)
    home = Layout(cache.state_dir).worktrees_dir(run_id)
    for path in sorted(home.iterdir()) if home.is_dir() else []:
        with contextlib.suppress(ConductorError):
            cache.remove_worktree(path, force=True)
    mine = [ref.removeprefix("refs/heads/") for ref in cache.list_refs("refs/heads/")
            if f".attempts/{run_id}/" in ref]  # fmt: skip
    with contextlib.suppress(ConductorError):
        cache.delete_branches(mine)
    shutil.rmtree(Layout(cache.state_dir).run_dir(run_id), ignore_errors=True)
