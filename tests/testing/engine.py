"""Drive the real engine on a real repository and store, with only the agents faked.

``start`` records a run the way ``conductor run`` does (``prepare``: preflight, the run
and task rows, the integration branch) and builds the ``RunContext`` the run's runner
would use, except that every process the run starts (agents, setup commands, ``run:``
checks, group gates) goes to a :class:`FakeExecutor`. ``Harness.drive`` then runs it
through ``conductor.run.start.drive`` exactly as the CLI does; ``Harness.run`` drives only
the ``Runner`` (as ``_prepare_runner`` builds it) for a test that must reach the runner
before it starts; ``Harness.ctx`` alone is enough to run one ``Attempt``.

    wf = workflow(repo, task("A"), task("B", after=["A"]))
    result = run_workflow(wf, writes({"A": {"a.txt": "a\\n"}}))
    assert result.state == "succeeded"
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conductor.exec.base import Request
from conductor.exec.fake import FakeExecutor, Handler, Reply, succeed
from conductor.git.workspace import Workspace
from conductor.plan.graph import task_deps
from conductor.plan.planner import Plan, make_plan
from conductor.run.context import RunContext
from conductor.run.debuglog import close_runner_log
from conductor.run.engine import Runner
from conductor.run.start import RunOptions, _prepare_runner, drive, prepare
from conductor.spec.config import RunSettings
from conductor.spec.model import AgentProfile, Group, Task, Workflow
from conductor.state.events import Emitter
from conductor.state.store import Row, Store
from tests.testing.repos import git

AGENT = "fake-agent"
# A custom command profile: its argv names the task and the instructions file, so a
# handler can tell agents from `bash -c` checks by argv[0] and read what it was told.
PROFILE = AgentProfile(name="fake", command=(AGENT, "{task_id}", "{prompt_file}"))
NAME = "t"
BRANCH = f"conductor/{NAME}"
# Retries wait a few hundredths of a second, not seconds; and a nearly full disk or a
# busy machine must not pause dispatch (resource alerts are not what these tests test).
SETTINGS = RunSettings(retry_backoff_s=0.05, min_free_memory_mb=0.0, min_free_disk_mb=0.0)


def task(task_id: str, *, after: Sequence[str] = (), **fields: Any) -> Task:
    """A task for the fake agent; ``after`` is its ``depends_on``."""
    fields.setdefault("prompt", f"do {task_id}")
    fields.setdefault("agent", PROFILE.name)
    fields.setdefault("retries", 0)  # a failure is final unless the test asks for retries
    return Task(id=task_id, depends_on=tuple(after), **fields)


def workflow(repo: Path, *tasks: Task, groups: Iterable[Group] = (), **fields: Any) -> Workflow:
    """A workflow as ``spec`` would build it: ``deps`` expanded from ``depends_on`` and
    group edges (the scheduler reads ``deps`` alone)."""
    wf = Workflow(
        path=repo / "wf.yaml",
        name=NAME,
        tasks={t.id: t for t in tasks},
        integration_branch=BRANCH,
        agents={PROFILE.name: PROFILE},
        groups={g.id: g for g in groups},
        **fields,
    )
    expanded = {t.id: dataclasses.replace(t, deps=task_deps(wf, t)) for t in tasks}
    return dataclasses.replace(wf, tasks=expanded)


def writes(files: Mapping[str, Mapping[str, str]], fail: Iterable[str] = ()) -> Handler:
    """A handler whose agents write ``files[task]`` and exit 0, or 1 for tasks in ``fail``;
    every other command (checks, gates, setup) exits 0."""
    failing = set(fail)

    def handler(request: Request) -> Reply:
        tid = task_of(request)
        if tid is None:
            return Reply()
        return Reply(exit_code=1 if tid in failing else 0, files=dict(files.get(tid, {})))

    return handler


def task_of(request: Request) -> str | None:
    """The task whose agent this request starts; None for checks, gates and setup."""
    return request.env.get("CONDUCTOR_TASK_ID") if is_agent(request) else None


def is_agent(request: Request) -> bool:
    return bool(request.argv) and request.argv[0] == AGENT


def _stub_agent(bin_dir: Path) -> None:
    """`fake-agent` on PATH so preflight accepts the profile; it fails loudly if the
    executor was not faked after all."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / AGENT
    exe.write_text("#!/bin/sh\necho 'fake-agent ran: the FakeExecutor was bypassed' >&2\nexit 99\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


@dataclass
class Harness:
    """A recorded run with its context, not yet driven. Close it (or use ``with``)."""

    wf: Workflow
    plan: Plan
    ws: Workspace
    store: Store
    run_id: str
    ctx: RunContext
    executor: FakeExecutor
    environ: dict[str, str]

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        close_runner_log(self.ws.state_dir)  # drive() attached a file handler for this repo
        self.store.close()

    def drive(self) -> EngineResult:
        """The whole run as `conductor run` drives it (lock, recovery, runner, cleanup,
        execution log), with this harness's executor."""
        state, _code = drive(self.ws, self.store, self.run_id, [], self.environ, self.wf,
                             self.plan, settings=SETTINGS, executor=self.executor)  # fmt: skip
        return self.result(state)

    def runner(self) -> Runner:
        """Recovery, scheduler and runner exactly as `conductor run` builds them."""
        row = self.store.run(self.run_id)
        assert row is not None
        return _prepare_runner(self.ctx, self.plan, json.loads(row["options"]))

    def run(self, before: Callable[[Runner], None]) -> EngineResult:
        """Only the runner (no log, no cleanup); ``before`` sees it just before it starts."""
        runner = self.runner()
        before(runner)
        return self.result(runner.run())

    def result(self, state: str) -> EngineResult:
        tasks = {r["task_id"]: r for r in self.store.tasks(self.run_id)}
        attempts: dict[str, list[Row]] = {t: [] for t in tasks}
        for a in self.store.attempts(self.run_id):
            attempts[a["task_id"]].append(a)
        for rows in attempts.values():
            rows.sort(key=lambda a: int(a["n"]))
        return EngineResult(
            state=state,
            run_id=self.run_id,
            repo=self.ws.root,
            tasks=tasks,
            attempts=attempts,
            events=self.store.events(self.run_id),
            head=self.ws.rev(f"refs/heads/{self.wf.integration_branch}"),
            requests=list(self.executor.requests),
        )


@dataclass
class EngineResult:
    """What a test looks at after a run: the store's rows, the branch, the requests."""

    state: str
    run_id: str
    repo: Path
    tasks: dict[str, Row]
    attempts: dict[str, list[Row]]
    events: list[Row]
    head: str | None
    requests: list[Request] = field(default_factory=list)

    def states(self) -> dict[str, str]:
        return {t: r["state"] for t, r in self.tasks.items()}

    def kinds(self, task_id: str | None = None) -> list[str]:
        """Event kinds in order, of one task (or of the run as a whole with None)."""
        return [e["kind"] for e in self.events if task_id is None or e["task_id"] == task_id]

    def events_of(self, kind: str) -> list[Row]:
        return [e for e in self.events if e["kind"] == kind]

    def agent_runs(self, task_id: str | None = None) -> list[Request]:
        return [r for r in self.requests if is_agent(r) and (task_id in (None, task_of(r)))]

    def merges(self, task_id: str) -> int:
        """Merge commits on the integration branch that name the task (one per success)."""
        out = git(self.repo, "log", BRANCH, "--merges", "--format=%H",
                  "--grep", f"Conductor-Task: {task_id}$")  # fmt: skip
        return len(out.split())

    def show(self, rev: str, path: str) -> str:
        return git(self.repo, "show", f"{rev}:{path}")


def start(
    wf: Workflow,
    handler: Handler = succeed,
    *,
    options: RunOptions | None = None,
    environ: Mapping[str, str] | None = None,
) -> Harness:
    """Record a run of ``wf`` (whose file sits in a git repository) with a fake executor."""
    bin_dir = wf.path.parent.parent / "bin"
    _stub_agent(bin_dir)
    env = dict(os.environ if environ is None else environ)
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", os.defpath)])
    plan = make_plan(wf)
    prepared = prepare(wf, plan, options or RunOptions(), env)
    executor = FakeExecutor(handler)
    emit = Emitter(prepared.store, prepared.run_id, prepared.secrets.redact)
    ctx = RunContext(
        wf, prepared.ws, prepared.store, prepared.run_id, prepared.secrets, emit,
        executor=executor, settings=SETTINGS,
        base_env={**env, "CONDUCTOR_STATE_DIR": str(prepared.ws.state_dir)},
    )  # fmt: skip
    return Harness(wf, plan, prepared.ws, prepared.store, prepared.run_id, ctx, executor, env)


def run_workflow(
    wf: Workflow,
    handler: Handler = succeed,
    *,
    options: RunOptions | None = None,
) -> EngineResult:
    """Record and drive a whole run."""
    with start(wf, handler, options=options) as h:
        return h.drive()
