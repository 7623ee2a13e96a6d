"""What every attempt of a run shares: workflow, git, store, secrets, ports, stop flags."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conductor.exec.base import Executor
from conductor.exec.local import LocalExecutor
from conductor.git.env import clean_env
from conductor.git.workspace import Workspace
from conductor.report.tracing import traceparent
from conductor.spec.config import RunSettings
from conductor.spec.model import Task, Workflow
from conductor.spec.secrets import Secrets
from conductor.state.events import Emitter
from conductor.state.layout import Layout
from conductor.state.records import AttemptRow
from conductor.state.store import Store

if TYPE_CHECKING:
    from conductor.run.outputs import Produced

PROGRESS_EVERY_S = 2.0  # throttle for step events parsed from agent output
# Task states that begin a phase of the attempt (the others are begun by the attempt).
_PHASE_OF = {"validating": "validate", "merging": "merge"}


@dataclass
class RunContext:
    wf: Workflow
    ws: Workspace
    store: Store
    run_id: str
    secrets: Secrets
    emit: Emitter
    executor: Executor = field(default_factory=LocalExecutor)  # a fake one in engine tests
    settings: RunSettings = field(default_factory=RunSettings)
    base_env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    stopping: threading.Event = field(default_factory=threading.Event)
    kill_now: threading.Event = field(default_factory=threading.Event)
    on_state: Callable[[str, str], None] = lambda task, state: None
    tracing: bool = False  # spans are exported: each attempt's processes get TRACEPARENT
    # pool -> why no worker can take its tasks now (an executor sets it, e.g. no live Ray
    # node fits): its tasks wait, and if nothing else can go on the run ends in a deadlock
    pools_down: dict[str, str] = field(default_factory=dict)
    _ports: dict[str, int] = field(default_factory=dict)
    _cancels: dict[str, threading.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _last_progress: dict[str, float] = field(default_factory=dict)
    _held_step: dict[str, str] = field(default_factory=dict)  # throttled, not yet recorded
    _last_line: dict[str, float] = field(default_factory=dict)

    @property
    def layout(self) -> Layout:
        return Layout(self.ws.state_dir)

    def set_state(self, task_id: str, state: str) -> None:
        self.store.update_task(self.run_id, task_id, state=state)
        self.on_state(task_id, state)
        if state in _PHASE_OF:
            self.phase(task_id, _PHASE_OF[state])

    def phase(self, task_id: str, phase: str) -> None:
        """The task's current attempt entered a phase (setup, agent, validate, merge):
        where the phase spans of its trace begin (``conductor.report.tracebuild``)."""
        self.emit("task_phase", task_id, phase=phase)

    def trace_env(self, task_id: str, n: int) -> dict[str, str]:
        """W3C trace context naming attempt ``n``'s span, for every process it starts, so
        an agent's own telemetry lands under it (empty when the run is not traced)."""
        return {"TRACEPARENT": traceparent(self.run_id, task_id, n)} if self.tracing else {}

    def progress(self, task_id: str, step: str) -> None:
        """A step parsed from the agent's output, recorded at most every PROGRESS_EVERY_S;
        a step the throttle held back is recorded when the attempt ends (``release``)."""
        now = time.monotonic()
        if now - self._last_progress.get(task_id, 0.0) < PROGRESS_EVERY_S:
            self._held_step[task_id] = step
            return
        self._last_progress[task_id] = now
        self._held_step.pop(task_id, None)
        self.store.update_task(self.run_id, task_id, step=step)
        self.emit("task_progress", task_id, step=step)

    def output_line(self, task_id: str, line: str) -> None:
        """The agent's latest output line, for the live view and --verbose (throttled)."""
        if not line.strip():
            return
        now = time.monotonic()
        if now - self._last_line.get(task_id, 0.0) < PROGRESS_EVERY_S:
            return
        self._last_line[task_id] = now
        self.emit("task_output", task_id, line=line.rstrip()[-200:])

    def ticker(self, task: Task) -> Callable[[float, float], None]:
        """Warn once at 80% of the timeout and once at half the idle timeout."""
        warned: set[str] = set()

        def tick(elapsed: float, idle: float) -> None:
            if task.timeout_s and elapsed >= 0.8 * task.timeout_s and "t" not in warned:
                warned.add("t")
                self.emit(
                    "task_warning",
                    task.id,
                    warning="80% of timeout used",
                    elapsed_s=round(elapsed),
                    timeout_s=task.timeout_s,
                )
            if task.idle_timeout_s and idle >= 0.5 * task.idle_timeout_s and "i" not in warned:
                warned.add("i")
                self.emit("task_warning", task.id, warning="idle", idle_s=round(idle))

        return tick

    def port_for(self, task_id: str) -> int:
        """A free TCP port, distinct among running tasks (kept until release)."""
        with self._lock:
            if task_id in self._ports:
                return self._ports[task_id]
            taken = set(self._ports.values())
            while True:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    port = int(s.getsockname()[1])
                if port not in taken:
                    self._ports[task_id] = port
                    return port

    def release(self, task_id: str) -> None:
        """The task's attempt ended: record its last step, free its port and cancel flag."""
        step = self._held_step.pop(task_id, None)
        if step is not None:  # the final step is what the agent did last: never dropped
            self.store.update_task(self.run_id, task_id, step=step)
            self.emit("task_progress", task_id, step=step)
        with self._lock:
            self._ports.pop(task_id, None)
            self._cancels.pop(task_id, None)

    def cancel_event(self, task_id: str) -> threading.Event:
        """Set when this task (or the whole run) must stop; the executor watches it."""
        with self._lock:
            ev = self._cancels.setdefault(task_id, threading.Event())
            if self.stopping.is_set():
                ev.set()
            return ev

    def stop(self) -> None:
        """Stop every running agent gracefully (TERM, grace period, KILL)."""
        with self._lock:
            self.stopping.set()
            for ev in self._cancels.values():
                ev.set()

    def cancel_task(self, task_id: str) -> bool:
        with self._lock:
            ev = self._cancels.get(task_id)
        if ev is not None:
            ev.set()
        return ev is not None

    def task_env(self, task: Task, n: int, worktree: Path) -> dict[str, str]:
        """The environment validators and setup commands see (no agent extras)."""
        env = clean_env(self.base_env)
        env.update(
            {
                "CONDUCTOR_RUN_ID": self.run_id,
                "CONDUCTOR_TASK_ID": task.id,
                "CONDUCTOR_ATTEMPT": str(n),
                "CONDUCTOR_WORKTREE": str(worktree),
                **self.trace_env(task.id, n),
            }
        )
        env.update({k: self.secrets.expand(v) for k, v in task.env.items()})
        return env

    def upstream(self, task: Task, seen: Mapping[str, Produced]) -> list[tuple[str, str, str]]:
        """One line per dependency (as ``outputs.upstream`` read them): what it changed,
        for the instructions file."""
        out = []
        for dep in task.deps:
            title = self.wf.tasks[dep].title if dep in self.wf.tasks else ""
            it = seen[dep]
            if not it.succeeded:  # it runs anyway, by its trigger rule
                out.append((dep, title, f"{it.state} in this run: its work is not in your "
                            "worktree"))  # fmt: skip
                continue
            summary = "not run by conductor" if it.run_id is None else self._summary(it.attempts)
            out.append((dep, title, summary))
        return out

    def _summary(self, attempts: Sequence[AttemptRow]) -> str:
        atts = [a for a in attempts if a["state"] == "succeeded"]
        if not atts:
            return "succeeded"
        a = atts[-1]
        if not a["pre_commit"] or not a["post_commit"]:
            return "succeeded"
        files = self._changed(a)
        shown = ", ".join(files[:20]) + (f" (+{len(files) - 20} more)" if len(files) > 20 else "")
        return f"changed {len(files)} file(s): {shown or 'none'}"

    def _changed(self, a: AttemptRow) -> list[str]:
        """The paths an attempt changed: recorded when it committed (no git process per
        dependency edge); asked of git for one recorded before the store kept them."""
        recorded = a.get("changed_files")
        found = json.loads(recorded) if recorded else None
        if isinstance(found, list):
            return [str(p) for p in found]
        return self.ws.changed_files(a["pre_commit"] or "", a["post_commit"] or "")
