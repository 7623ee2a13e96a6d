"""OpenTelemetry traces of a run (issue 14), read with the SDK's in-memory exporter.

Real runs of shell tasks and of the fake Claude Code CLI, driven in this process the way
`conductor run` drives them, with the exporter the OTEL_* variables would pick swapped for
an InMemorySpanExporter; and one run in other processes, killed and resumed, exporting
to a small OTLP/HTTP collector. Skipped where the `otel` extra is not installed.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

from conductor.git.workspace import Workspace
from conductor.plan.planner import make_plan
from conductor.report import traces
from conductor.report.tracing import attempt_span, run_span, trace_id
from conductor.run.debuglog import close_runner_log
from conductor.run.start import RunOptions, drive, prepare
from conductor.spec.config import configured, run_settings
from conductor.spec.load import load_workflow
from conductor.state.store import open_store
from tests.testing.harness import fake_path
from tests.testing.otlp import Collector
from tests.testing.repos import git
from tests.testing.runner import cli, latest_run, write_workflow


def environ(**extra: str) -> dict[str, str]:
    """This process's environment with the fakes first and traces switched on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**env, "PATH": fake_path(), "OTEL_TRACES_EXPORTER": "otlp", **extra}


def run_here(repo: Path, env: dict[str, str], run_id: str | None = None) -> tuple[str, str]:
    """Record and drive a run (or resume ``run_id``) as the CLI does: (run id, state)."""
    if run_id is not None:
        ws = Workspace.discover(repo / "wf.yaml")
        with open_store(ws.state_dir) as store:
            try:
                return run_id, drive(ws, store, run_id, [], env)[0]
            finally:
                close_runner_log(ws.state_dir)
    wf, cfg = configured(load_workflow(repo / "wf.yaml"), {}, env)
    plan = make_plan(wf)
    prep = prepare(wf, plan, RunOptions(), env)
    try:
        state, _code = drive(prep.ws, prep.store, prep.run_id, [], env, wf, plan,
                             settings=run_settings(cfg))  # fmt: skip
    finally:
        prep.store.close()
        close_runner_log(prep.ws.state_dir)
    return prep.run_id, state


@dataclass
class Tree:
    """The exported spans of one run, looked up by name and by parent."""

    spans: list[ReadableSpan]

    def one(self, name: str, parent: ReadableSpan | None = None) -> ReadableSpan:
        found = self.named(name, parent)
        assert len(found) == 1, (name, [s.name for s in self.spans])
        return found[0]

    def named(self, name: str, parent: ReadableSpan | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name
                and (parent is None or _parent(s) == _sid(parent))]  # fmt: skip

    def children(self, span: ReadableSpan) -> list[str]:
        kids = [s for s in self.spans if _parent(s) == _sid(span)]
        return [s.name for s in sorted(kids, key=lambda s: s.start_time or 0)]


def _sid(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


class Exported:
    """What the runners of a test exported: each TraceSink gets an in-memory exporter
    instead of the one the OTEL_* variables name (and shuts it down at the run's end)."""

    def __init__(self) -> None:
        self.exporters: list[InMemorySpanExporter] = []

    def new(self, env: object) -> list[InMemorySpanExporter]:
        self.exporters.append(InMemorySpanExporter())
        return self.exporters[-1:]

    def get_finished_spans(self) -> list[ReadableSpan]:
        return [s for e in self.exporters for s in e.get_finished_spans()]

    def clear(self) -> None:
        self.exporters.clear()


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Exported:
    spans = Exported()
    monkeypatch.setattr(traces, "exporter_from_env", spans.new)
    return spans


@dataclass
class Ran:
    run_id: str
    state: str
    tree: Tree
    traceparent: str  # what task A's process saw in $TRACEPARENT
    endpoint: str  # and in $OTEL_EXPORTER_OTLP_ENDPOINT


@pytest.fixture
def ran(repo: Path, tmp_path: Path, exported: Exported) -> Ran:
    seen = tmp_path / "seen.txt"
    write_workflow(repo, f"""
        version: 1
        name: t
        agents:
          claude: {{preset: claude-code, model: sonnet}}
        workspace:
          setup: ["true"]
        tasks:
          A:
            run: 'echo "$TRACEPARENT $OTEL_EXPORTER_OTLP_ENDPOINT" > {seen}; echo a > a.txt'
            validate:
              - exists: [a.txt]
          B:
            agent: claude
            prompt: |
              Do the work.
              ```fake-agent
              write b.txt from claude
              say done
              ```
            depends_on: [A]
          F:
            run: 'echo "the tests are red" >&2; exit 3'
            retries: 0
          G:
            run: 'true'
            depends_on: [F]
    """)  # fmt: skip
    git(repo, "add", "wf.yaml")
    git(repo, "commit", "-qm", "workflow")
    run_id, state = run_here(repo, environ(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"))
    parent, endpoint = seen.read_text().split()
    return Ran(run_id, state, Tree(list(exported.get_finished_spans())), parent, endpoint)


def test_a_run_is_one_trace_of_run_task_attempt_and_phases(ran: Ran) -> None:
    assert ran.state == "failed"
    tree = ran.tree
    # the trace id is the run id's: the first 16 bytes of its sha256
    assert {s.context.trace_id for s in tree.spans if s.context} == {trace_id(ran.run_id)}
    root = tree.one("conductor run t")
    assert root.parent is None and _sid(root) == run_span(ran.run_id, 0)
    assert sorted(tree.children(root)) == ["task A", "task B", "task F", "task G"]
    a = tree.one("task A", root)
    attempt = tree.one("attempt 1", a)
    assert _sid(attempt) == attempt_span(ran.run_id, "A", 1)
    assert tree.children(attempt) == ["setup", "agent", "validate", "merge"]
    validate = tree.one("validate", attempt)
    assert [e.name for e in validate.events] == ["check passed"]
    # phases follow each other inside their attempt, which sits inside its task
    phases = [tree.one(n, attempt) for n in ("setup", "agent", "validate", "merge")]
    for before, after in itertools.pairwise(phases):
        assert before.end_time == after.start_time
    assert a.start_time <= attempt.start_time <= phases[0].start_time  # type: ignore[operator]
    assert phases[-1].end_time <= attempt.end_time <= a.end_time  # type: ignore[operator]
    assert _attrs(attempt)["conductor.outcome"] == "succeeded"
    assert _attrs(attempt)["conductor.merge_commit"]
    assert _attrs(root)["conductor.run.state"] == "failed"
    # every span exported once, and every parent is in the trace
    ids = [_sid(s) for s in tree.spans]
    assert len(ids) == len(set(ids))
    assert {_parent(s) for s in tree.spans} - {None} <= set(ids)


def test_the_agents_usage_is_on_its_invoke_agent_span(ran: Ran) -> None:
    tree = ran.tree
    attempt = tree.one("attempt 1", tree.one("task B"))
    assert tree.children(attempt) == ["setup", "invoke_agent claude", "validate", "merge"]
    agent = _attrs(tree.one("invoke_agent claude", attempt))
    # the fake claude reports 2 turns: 100 input tokens a turn + 15 cached, 20 output a turn
    assert agent["gen_ai.operation.name"] == "invoke_agent"
    assert agent["gen_ai.agent.name"] == "claude"
    assert agent["gen_ai.provider.name"] == "anthropic"
    assert agent["gen_ai.request.model"] == "sonnet"
    assert agent["gen_ai.response.model"]  # what the CLI said it used
    assert agent["gen_ai.usage.input_tokens"] == 215
    assert agent["gen_ai.usage.output_tokens"] == 40
    assert agent["conductor.usage.cache_tokens"] == 15
    assert agent["conductor.cost_usd"] == pytest.approx(0.002)
    # a shell task is no GenAI agent
    shell = tree.one("agent", tree.one("attempt 1", tree.one("task A")))
    assert not any(k.startswith("gen_ai.") for k in _attrs(shell))


def test_a_failure_ends_its_phase_attempt_and_task_with_error_status(ran: Ran) -> None:
    tree = ran.tree
    task = tree.one("task F")
    attempt = tree.one("attempt 1", task)
    agent = tree.one("agent", attempt)
    for span in (task, attempt, agent):
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description == "agent exited 3"
    assert "the tests are red" in _attrs(attempt)["conductor.output"]  # the log's tail
    assert _attrs(task)["conductor.task.state"] == "failed"
    blocked = tree.one("task G")
    assert tree.children(blocked) == []
    assert _attrs(blocked)["conductor.task.state"] == "blocked"
    assert _attrs(blocked)["conductor.blocked_by"] == "F"
    assert tree.one("conductor run t").status.status_code == StatusCode.ERROR


def test_each_attempt_gets_trace_context_naming_its_span(ran: Ran) -> None:
    version, trace, parent, flags = ran.traceparent.split("-")
    assert (version, flags) == ("00", "01")
    assert int(trace, 16) == trace_id(ran.run_id)
    attempt = ran.tree.one("attempt 1", ran.tree.one("task A"))
    assert int(parent, 16) == _sid(attempt)  # its own spans land under its attempt
    assert ran.endpoint == "http://127.0.0.1:9"  # the OTEL_* variables pass through


def test_an_interrupted_run_resumed_continues_the_same_trace(
    repo: Path, tmp_path: Path, exported: Exported
) -> None:
    started, done = tmp_path / "started", tmp_path / "done"
    write_workflow(repo, f"""
        version: 1
        name: t
        tasks:
          A: {{run: 'if [ -e {done} ]; then echo a > a.txt; exit 0; fi; touch {done} {started}; sleep 60'}}
    """)  # fmt: skip
    git(repo, "add", "wf.yaml")
    git(repo, "commit", "-qm", "workflow")
    env = environ()
    with _ctrl_c_once(started):
        run_id, state = run_here(repo, env)
    assert state == "interrupted"
    first = Tree(list(exported.get_finished_spans()))
    interrupted = first.one("attempt 1", first.one("task A"))
    assert _attrs(interrupted)["conductor.outcome"] == "interrupted"
    exported.clear()
    _, state = run_here(repo, env, run_id)
    assert state == "succeeded"
    later = Tree(list(exported.get_finished_spans()))
    assert {s.context.trace_id for s in later.spans if s.context} == {trace_id(run_id)}
    resume = later.one("conductor resume t")
    assert _parent(resume) == run_span(run_id, 0)  # under the first runner's root
    attempt = later.one("attempt 2", later.one("task A", resume))
    assert _sid(attempt) == attempt_span(run_id, "A", 2)
    ids = [_sid(s) for s in first.spans + later.spans]
    assert len(ids) == len(set(ids))  # nothing exported twice


class _ctrl_c_once:  # a context manager named like the function it reads as
    """Send this process one SIGINT once ``marker`` exists (the task is running): the
    runner's own handler takes it, as when a person presses Ctrl-C."""

    def __init__(self, marker: Path) -> None:
        self.marker, self.stop = marker, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        deadline = time.monotonic() + 30
        while not self.stop.is_set() and time.monotonic() < deadline:
            if self.marker.exists():
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.02)

    def __enter__(self) -> None:
        self.thread.start()

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_a_killed_runner_leaves_no_hole_in_the_trace(repo: Path, tmp_path: Path) -> None:
    """kill -9 while the agent runs, `conductor resume`: the resumed runner ends and
    exports what the dead one had open, and its own spans join the same trace."""
    seen = tmp_path / "seen.txt"
    write_workflow(repo, f"""
        version: 1
        name: t
        tasks:
          A: {{run: 'echo "$TRACEPARENT" > {seen}; echo a > a.txt'}}
    """)  # fmt: skip
    git(repo, "add", "wf.yaml")
    git(repo, "commit", "-qm", "workflow")
    with Collector() as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_SERVICE_NAME": "ci"}
        proc = cli(repo, "run", "wf.yaml", env={**env, "CONDUCTOR_CRASH_AT": "agent"})
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        run_id = latest_run(repo)
        proc = cli(repo, "resume", run_id, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        spans = list(collector.spans)
    assert {s.trace_id for s in spans} == {f"{trace_id(run_id):032x}"}
    assert {s.service for s in spans} == {"ci"}
    by_id = {s.span_id: s for s in spans}
    assert len(by_id) == len(spans)  # each span once
    assert all(s.parent_id in by_id for s in spans if s.parent_id)  # no orphans
    [root] = [s for s in spans if s.parent_id is None]
    assert root.name == "conductor run t" and "killed" in (root.error or "")
    first = [s for s in spans if s.name == "attempt 1"]
    assert [s.attrs["conductor.outcome"] for s in first] == ["interrupted"]
    [resume] = [s for s in spans if s.name == "conductor resume t"]
    assert resume.parent_id == root.span_id
    [second] = [s for s in spans if s.name == "attempt 2"]
    assert second.attrs["conductor.outcome"] == "succeeded"
    assert by_id[second.parent_id or ""].parent_id == resume.span_id
    assert seen.read_text().split("-")[2] == second.span_id  # the resumed agent's context


def test_replayed_events_rebuild_only_what_was_left_open(tmp_path: Path) -> None:
    """Unit: a runner that ended cleanly leaves nothing to export again."""
    from conductor.report.tracebuild import SpanRecord, replay
    from conductor.spec.model import Task, Workflow

    wf = Workflow(path=tmp_path / "wf.yaml", name="t", tasks={"A": Task(id="A", run="true")})
    rows = [_row(1, "run_started", None), _row(2, "task_started", "A", attempt=1),
            _row(3, "task_phase", "A", phase="agent")]  # fmt: skip
    out: list[SpanRecord] = []
    assert replay("r1", wf, rows, 0.5, out.append) == 1
    assert [s.name for s in out] == ["agent", "attempt 1", "task A", "conductor run t"]
    assert all(s.end == 3 for s in out)
    out.clear()
    rows += [_row(4, "run_finished", None, state="interrupted", counts={})]
    assert replay("r1", wf, rows, 0.5, out.append) == 1
    assert out == []


def _row(ts: float, kind: str, task: str | None, **data: Any) -> Any:
    return {"id": int(ts), "run_id": "r1", "ts": ts, "kind": kind, "level": "info",
            "task_id": task, "data": data}  # fmt: skip
