"""Rendering events for people (plain timestamped lines) and machines (JSON lines)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from conductor.console.safe import safe
from conductor.state.endings import counts_text, settled_from_docs
from conductor.state.events import event_json
from conductor.state.records import EventRow


def _clock(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts or 0))


def _usage(d: dict[str, Any]) -> str:
    from conductor.report.spend import spend_text
    from conductor.state.records import Spend

    return f"agent reported {spend_text(Spend.of(d))}"


def _held(row: EventRow) -> str:
    d, how = row["data"], f"{row['run_id']} {row['task_id']}"
    size = ""
    if d.get("files") is not None:
        size = f", {d['files']} file(s) +{d.get('insertions') or 0} -{d.get('deletions') or 0}"
    return (f"AWAITING APPROVAL (attempt {d.get('attempt')}{size}): `conductor diff {how}`, "
            f"then `conductor approve {how}` or `conductor reject {how} -m WHY`")  # fmt: skip


def _decided(d: dict[str, Any], verb: str) -> str:
    by = " (--auto-approve)" if d.get("auto") else f" by {d['by']}" if d.get("by") else ""
    if verb == "approved":
        return f"approved{by}"
    message = d.get("message")
    return f"rejected{by}: " + (f"retried with feedback: {message}" if message else "fails")


def describe(row: EventRow) -> str:
    """One human line for an event."""
    d: dict[str, Any] = row["data"]
    kind = row["kind"]
    who = row["task_id"] or d.get("group") or ""
    texts: dict[str, Callable[[], str]] = {
        "run_started": lambda: (
            f"run started: {d.get('tasks')} task(s), "
            f"{d.get('strategy')}, concurrency {d.get('concurrency')}"
        ),
        "task_started": lambda: f"started (attempt {d.get('attempt')}, agent {d.get('agent')})",
        "task_phase": lambda: f"phase: {d.get('phase')}",
        "task_progress": lambda: (
            f"{d.get('percent', '')}{'% ' if 'percent' in d else ''}"
            f"{d.get('step') or d.get('message') or ''}"
        ),
        "task_completed": lambda: f"succeeded (attempt {d.get('attempt')})",
        "task_failed": lambda: f"FAILED: {d.get('error')}",
        "task_retrying": lambda: f"retrying in {d.get('delay_s')}s: {d.get('error')}",
        "task_blocked": lambda: f"blocked by {d.get('cause')}",
        "task_cancelled": lambda: "cancelled",
        "task_awaiting_approval": lambda: _held(row),
        "task_approved": lambda: _decided(d, "approved"),
        "task_rejected": lambda: _decided(d, "rejected"),
        "task_output": lambda: f"| {d.get('line')}",
        "task_usage": lambda: _usage(d),
        "task_sandbox": lambda: f"ran sandboxed, refused {d.get('refused') or 'nothing'}",
        "task_paused": lambda: (
            f"paused ({d.get('error')}): "
            + (
                f"moved to {d.get('fallback')}"
                if d.get("fallback")
                else f"resumes at {_clock(d.get('resume_at'))}"
            )
        ),
        "budget_reached": lambda: (
            f"BUDGET reached: ${d.get('spent'):.4f} of ${d.get('budget')}"
            " spent; nothing new is dispatched"
        ),
        "pool_paused": lambda: str(d.get("message")),
        "pool_resumed": lambda: str(d.get("message")),
        "deadlock": lambda: f"DEADLOCK, the run ends failed (resumable): {d.get('message')}",
        "hook_failed": lambda: f"hook {d.get('hook') or ''} failed: {d.get('message')}",
        "rolled_back": lambda: f"rolled back {d.get('detail') or ''}".strip(),
        "results_replaced": lambda: (
            f"took out the earlier results of {', '.join(d.get('tasks') or [])} to redo them"
        ),
        "task_queued": lambda: f"queued #{d.get('position')}: {d.get('reason')}",
        "system_alert": lambda: f"ALERT: {d.get('alert')} ({d.get('action')})",
        "task_skipped": lambda: f"skipped: {d.get('reason')}",
        "task_warning": lambda: f"warning: {d.get('warning')}",
        "validation_failed": lambda: f"check failed: {d.get('check')}",
        "validation_passed": lambda: f"check passed: {d.get('check')}",
        "merged": lambda: f"merged as {d.get('commit')}",
        "conflict": lambda: "merge conflict in " + ", ".join(d.get("paths") or []),
        "gate_started": lambda: "gate running",
        "gate_passed": lambda: "gate passed",
        "gate_failed": lambda: "gate FAILED",
        "run_finished": lambda: f"run {d.get('state')}: {counts_text(d.get('counts') or {})}",
        "log_written": lambda: f"execution log: {d.get('path')}",
    }
    text = texts.get(kind, lambda: json.dumps(d, default=str))()
    # agent output, progress and errors are in here: shown escaped, never as raw escapes
    return safe(f"{who}: {text}" if who else text)


class PlainSink:
    """Timestamped lines, no colour: for pipes, CI and log files."""

    QUIET_KINDS = frozenset({"task_failed", "run_finished", "log_written", "gate_failed",
                             "task_awaiting_approval", "deadlock"})  # fmt: skip

    def __init__(
        self, out: TextIO | None = None, quiet: bool = False, verbose: bool = False
    ) -> None:
        self.out = out or sys.stdout
        self.quiet = quiet
        self.verbose = verbose

    def __call__(self, row: EventRow) -> None:
        if self.quiet and row["kind"] not in self.QUIET_KINDS:
            return
        if row["kind"] in ("validation_passed", "task_output", "task_phase") and not self.verbose:
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(row["ts"]))
        _write(self.out, f"{stamp} {describe(row)}\n")
        if row["kind"] == "run_finished":  # the summary: which conflicts retries settled
            for s in settled_from_docs(row["data"].get("settled") or ()):
                _write(self.out, f"{stamp} {safe(s.text())}\n")


class JsonSink:
    """One JSON object per event, for machines."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def __call__(self, row: EventRow) -> None:
        doc = event_json(row)
        _write(self.out, json.dumps(doc, default=str) + "\n")


def _write(out: TextIO, text: str) -> None:
    try:
        out.write(text)
        out.flush()
    except (BrokenPipeError, ValueError):
        pass  # the reader went away (`| head`): the run goes on regardless


def make_sink(as_json: bool, quiet: bool = False, verbose: bool = False) -> PlainSink | JsonSink:
    """JSON lines with ``--json``, else plain timestamped lines."""
    return JsonSink() if as_json else PlainSink(quiet=quiet, verbose=verbose)
