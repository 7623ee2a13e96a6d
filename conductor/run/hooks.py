"""Hooks: the workflow's ``on:`` commands, run on events with the event as JSON on stdin.

``HookSink`` is an event sink. A call only puts work on a queue; one background thread
runs the hooks in event order, each as an argv list (never through a shell) through an
executor, so it leads its own process group and is stopped as a tree when it outlives
its timeout; what it started outside its group is swept by its process marker. A hook
that fails, hangs or cannot start is reported through ``warn`` and never fails the run.

Event names: every ``on:`` key is an engine event kind except ``group_completed``, which
conductor derives: it fires once per group when the group's gate passed (``gate_passed``)
or, for a group without a gate, when its last selected task succeeded. A group whose
tasks were all skipped as up to date did not complete in this run and fires nothing.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conductor.exec.base import Executor, Limits, Request
from conductor.exec.local import LocalExecutor
from conductor.exec.sweep import new_mark
from conductor.spec.model import Workflow
from conductor.state.events import event_json
from conductor.state.records import EventRow

Warn = Callable[[str, str], None]  # (hook event, message)

DEFAULT_TIMEOUT_S = 30.0
KILL_GRACE_S = 1.0  # between TERM and KILL of a hook that outlived its timeout
# Events about hooks themselves never run hooks: a failing hook must not feed itself.
IGNORED = frozenset({"hook_failed"})
# The {state} of an event without a `state` of its own.
STATE_OF = {
    "task_queued": "queued",
    "task_started": "running",
    "task_completed": "succeeded",
    "task_failed": "failed",
    "task_retrying": "retrying",
    "run_started": "running",
    "merged": "merged",
    "conflict": "conflict",
    "group_completed": "succeeded",
    "system_alert": "alert",
    "task_awaiting_approval": "awaiting_approval",
    "task_approved": "approved",
    "task_rejected": "rejected",
}
_PLACEHOLDER = re.compile(r"\{(run|task|state|group)\}")

log = logging.getLogger("conductor.run.hooks")


@dataclass(frozen=True)
class Job:
    event: str  # the `on:` key
    argv: tuple[str, ...]
    payload: str  # JSON for stdin
    task: str | None
    mark: str  # what the hook starts carries it: swept when the hook ends


def expand(argv: Iterable[str], values: Mapping[str, str]) -> list[str]:
    """Substitute {run} {task} {state} {group} in each argument; other braces stay as is."""
    return [_PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), arg) for arg in argv]


def event_doc(event: str, row: EventRow, group: str | None, state: str) -> dict[str, Any]:
    """What a hook reads on stdin: the JsonSink shape plus the hook's own event name."""
    return {"event": event, **event_json(row), "group": group, "state": state}


class HookSink:
    def __init__(
        self,
        wf: Workflow,
        warn: Warn,
        *,
        selected: Iterable[str] | None = None,
        cwd: Path | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        environ: Mapping[str, str] | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.hooks = dict(wf.hooks)
        self.warn = warn
        self.cwd = cwd or wf.source_dir
        self.timeout_s = timeout_s
        self.environ = dict(os.environ if environ is None else environ)
        self.executor = executor or LocalExecutor()
        self._wf = wf
        chosen = list(wf.tasks) if selected is None else list(selected)
        self._open: dict[str, set[str]] = {}  # group -> selected tasks not yet done
        for t in chosen:
            group = wf.tasks[t].group if t in wf.tasks else None
            if group:
                self._open.setdefault(group, set()).add(t)
        self._ran: set[str] = set()  # groups with a task that succeeded in this run
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- the sink (engine side: never blocks) -------------------------------------

    def __call__(self, row: EventRow) -> None:
        kind = row["kind"]
        data = row["data"] or {}
        if self._closed or kind in IGNORED or "hook" in data:
            return
        if kind in self.hooks:
            self._submit(kind, row)
        if "group_completed" in self.hooks:
            group = self._completed_group(row)
            if group is not None:
                self._submit("group_completed", row, group)

    def _completed_group(self, row: EventRow) -> str | None:
        kind, task, data = row["kind"], row["task_id"], row["data"] or {}
        if kind == "gate_passed":
            return str(data.get("group")) if data.get("group") else None
        if kind not in ("task_completed", "task_skipped") or task not in self._wf.tasks:
            return None
        group = self._wf.tasks[task].group
        if group is None or group not in self._open:
            return None
        self._open[group].discard(task)
        if kind == "task_completed":
            self._ran.add(group)
        gated = group in self._wf.groups and bool(self._wf.groups[group].validate)
        if self._open[group] or gated or group not in self._ran:
            return None
        return group

    def _submit(self, event: str, row: EventRow, group: str | None = None) -> None:
        data = row["data"] or {}
        task = row["task_id"]
        if group is None:
            group = data.get("group") or (
                self._wf.tasks[task].group if task in self._wf.tasks else None
            )
        state = str(data.get("state") or STATE_OF.get(event, event))
        values = {"run": row["run_id"], "task": task or "", "state": state, "group": group or ""}
        doc = event_doc(event, row, group, state)
        job = Job(event, tuple(expand(self.hooks[event], values)), json.dumps(doc, default=str),
                  task, new_mark(row["run_id"], "hook"))  # fmt: skip
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="conductor-hooks", daemon=True)
            self._thread.start()
        self._queue.put(job)

    def close(self, timeout: float | None = None) -> bool:
        """Run what is queued, then stop; True when everything ran within ``timeout``."""
        self._closed = True
        if self._thread is None:
            return True
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the worker -------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._run(job)
            except Exception as exc:  # whatever happens to a hook, the run goes on
                self._warn(job, f"could not run: {exc!r}")

    # The run's secret masking (`Secrets.redact`), set by the runner: a failing hook's
    # last output line goes into the warning, and conductor.log is written here, not
    # through the emitter that masks events.
    redact: Callable[[str], str] = str

    def _warn(self, job: Job, problem: str) -> None:
        who = f" ({job.task})" if job.task else ""
        message = self.redact(f"hook for {job.event}{who} `{' '.join(job.argv)}` {problem}")
        log.warning(message)
        try:
            self.warn(job.event, message)
        except Exception:
            log.exception("hook warning callback failed")

    def _run(self, job: Job) -> None:
        tail: deque[str] = deque(maxlen=1)  # the last line says why a failing hook failed
        request = Request(
            job.argv,
            cwd=self.cwd,
            env={**self.environ, "CONDUCTOR_EVENT": job.event},
            limits=Limits(timeout_s=self.timeout_s, grace_s=KILL_GRACE_S),
            stdin=job.payload.encode(),
            on_line=lambda line: tail.append(line) if line.strip() else None,
            mark=job.mark,
        )
        res = self.executor.run(request)
        log.debug("hook %s %s: %s in %.2fs", job.event, job.argv, res.reason, res.duration_s)
        if res.reason == "start_failed":
            self._warn(job, f"could not start: {res.error}")
        elif res.reason == "timeout":
            self._warn(job, f"timed out after {self.timeout_s:g}s and was killed")
        elif not res.ok:
            why = f"exited {res.exit_code}" if res.exit_code is not None else res.error
            self._warn(job, why + (f": {tail[0].strip()}" if tail else ""))
