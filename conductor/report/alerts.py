"""The execution log's last section: the warnings and errors of the run, each a sentence
(never a Python dict), the newest ``MAX_ALERTS`` of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conductor.report.mdtext import cell, clock, row
from conductor.report.rundata import RunData, fmt_duration, fmt_usd
from conductor.state.endings import counts_text

MAX_ALERTS = 100


def _alert_text(kind: str, data: dict[str, Any]) -> str:
    special = _ALERT_TEXTS.get(kind)
    if special is not None:
        return special(data)
    if kind == "task_blocked" and data.get("cause"):
        return f"blocked by {data['cause']}"
    if kind == "conflict":
        return "merge conflict: " + ", ".join(map(str, data.get("paths") or []))
    if kind == "task_retrying":
        return f"attempt {data.get('attempt', '?')} failed: {data.get('error') or '?'}"
    if kind == "gate_failed":
        return f"gate of {data.get('group', '?')} failed"
    text = str(data.get("error") or data.get("warning") or data.get("message") or "")
    if data.get("idle_s") is not None:
        text += f" for {fmt_duration(float(data['idle_s']))}"
    return text or ", ".join(f"{k} {_plain(v)}" for k, v in data.items())


def _plain(value: Any) -> str:
    """A value of an event's data as words: never a Python dict or list literal."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _run_finished(d: dict[str, Any]) -> str:
    counts = counts_text(d.get("counts") or {})
    return f"run {d.get('state', '?')}" + (f": {counts}" if counts else "")


def _budget(d: dict[str, Any]) -> str:
    spent, budget = d.get("spent"), d.get("budget")
    if isinstance(spent, (int, float)) and isinstance(budget, (int, float)):
        return f"budget reached: {fmt_usd(spent)} of {fmt_usd(budget)} spent"
    return "budget reached"


_ALERT_TEXTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "run_finished": _run_finished,
    "budget_reached": _budget,
    "system_alert": lambda d: (
        str(d.get("alert") or d.get("warning") or d.get("message") or "system alert")
        + (f" ({d['action']})" if d.get("action") else "")
    ),
    "validation_failed": lambda d: f"check failed: {d.get('check', '?')}",
    "hook_failed": lambda d: f"hook {d.get('hook') or ''} failed: {d.get('message', '?')}",
}


def alerts(d: RunData) -> str:
    if not d.alerts:
        return ""
    shown = d.alerts[-MAX_ALERTS:]
    out = ["## Alerts", ""]
    if len(d.alerts) > len(shown):
        out += [f"The last {len(shown)} of {len(d.alerts)}.", ""]
    out += [row(("Time", "Level", "Event", "Task", "Message")), "|---|---|---|---|---|"]
    for e in shown:
        level = "❗ error" if e["level"] == "error" else "⚠️ warning"
        task = f"`{e['task_id']}`" if e["task_id"] else ""
        text = cell(_alert_text(e["kind"], e["data"]), 160)
        out.append(row((clock(e["ts"]), level, e["kind"], task, text)))
    return "\n".join(out) + "\n"
