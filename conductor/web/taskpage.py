"""A task's page: its attempts, the instructions it got, its log, validators and diff.

The log is read from the file conductor writes (already masked), a tail first and then
what is appended, the way `conductor logs -f` reads it. The diff is the one `conductor
diff` shows, through the git room. Approve and reject buttons appear only while the
task awaits approval and this conductor has the approval commands.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conductor.errors import ConductorError
from conductor.ops.follow import log_of
from conductor.report.rundata import fmt_duration, fmt_usd
from conductor.report.spend import tokens_text
from conductor.state.layout import Layout
from conductor.state.liveness import shown_state, shown_task_state
from conductor.state.records import AttemptRow, RunRow, Spend, TaskRow
from conductor.web.markup import badge, dl, esc, href, page, short, table
from conductor.web.pages import Site

TAIL_BYTES = 64 * 1024  # what the page shows of a log at first
CHUNK_BYTES = 256 * 1024  # at most this much per refresh


def approvals_available() -> bool:
    """Whether this conductor has `approve` / `reject` (another part of it provides them)."""
    import importlib.util

    return importlib.util.find_spec("conductor.ops.approve") is not None


def _read(path: Path, limit: int = CHUNK_BYTES) -> str:
    try:
        with path.open("rb") as fh:
            return fh.read(limit).decode(errors="replace")
    except OSError:
        return ""


def log_chunk(attempt: AttemptRow, offset: int | None) -> dict[str, Any]:
    """The log from ``offset`` (None: its last ``TAIL_BYTES``) and where to read on."""
    try:
        path = log_of(attempt)
        size = path.stat().st_size
    except (ConductorError, OSError):
        return {"text": "", "offset": 0, "done": attempt["finished"] is not None}
    start = max(0, size - TAIL_BYTES) if offset is None else min(max(0, offset), size)
    with path.open("rb") as fh:
        fh.seek(start)
        data = fh.read(CHUNK_BYTES)
    return {"text": data.decode(errors="replace"), "offset": start + len(data),
            "done": attempt["finished"] is not None, "attempt": attempt["n"]}  # fmt: skip


def _attempt_rows(attempts: Sequence[AttemptRow]) -> list[list[str]]:
    rows = []
    for a in attempts:
        spent = Spend.of(a)
        dur = (a["finished"] or time.time()) - a["started"]
        rows.append([
            str(a["n"]), badge(a["state"]), esc(time.strftime("%H:%M:%S",
                                                              time.localtime(a["started"]))),
            esc(fmt_duration(dur)), esc("" if a["exit_code"] is None else a["exit_code"]),
            esc(fmt_usd(a["cost_usd"]) if a["cost_usd"] is not None else ""),
            esc(tokens_text(spent)), esc(a["model"] or ""), short(a["post_commit"]),
            esc(a["error"] or ""),
        ])  # fmt: skip
    return rows


def _checks(attempt: AttemptRow | None) -> str:
    results = json.loads(attempt["checks"] or "[]") if attempt is not None else []
    if not results:
        return "<p class=empty>no validator ran on the latest attempt</p>"
    out = []
    for c in results:
        state = "succeeded" if c.get("ok") else "failed"
        out.append(f"<details{' open' if not c.get('ok') else ''}><summary>{badge(state)} "
                   f"{esc(c.get('name'))} <small>{float(c.get('duration_s') or 0):.1f}s"
                   f"</small></summary><pre>{esc(c.get('output') or '')}</pre></details>")
    return "".join(out)


def _instructions(site: Site, run_id: str, attempt: AttemptRow | None) -> str:
    if attempt is None:
        return "<p class=empty>no attempt yet</p>"
    path = Layout(site.state_dir).prompt_file(run_id, attempt["task_id"], attempt["n"])
    text = _read(path)
    if not text:
        return "<p class=empty>no instructions file (a shell task runs its command)</p>"
    return f"<details><summary>{esc(path.name)}</summary><pre>{esc(text)}</pre></details>"


def _diff(site: Site, run: RunRow, task: TaskRow) -> str:
    try:
        from conductor.ops.approve import task_patch
    except ImportError:
        return "<p class=empty>this conductor cannot show diffs</p>"
    try:
        patch = task_patch(site.store, run, task["task_id"], None)
    except ConductorError as exc:
        return f"<p class=empty>{esc(str(exc))}</p>"
    lines = "".join(f"<span class='{_diff_class(line)}'>{esc(line)}</span>\n"
                    for line in patch.text.splitlines()[:4000])  # fmt: skip
    return f"<p>{esc(patch.what)}</p><pre class=diff>{lines or 'no changes'}</pre>"


def _diff_class(line: str) -> str:
    if line.startswith(("+++", "---", "diff ", "index ")):
        return "dh"
    return {"+": "da", "-": "dd", "@": "dc"}.get(line[:1], "dx")


def _decide(run_id: str, tid: str, token: str | None) -> str:
    base = f"/runs/{run_id}/tasks/{tid}"
    return (f"<form class=decide data-approve='{href(base + '/approve', token)}'"
            f" data-reject='{href(base + '/reject', token)}'>"
            "<button type=button class=approve>Approve</button> "
            "<input name=message placeholder='feedback for a retry (empty: fail it)'> "
            "<button type=button class=reject>Reject</button><output></output></form>")  # fmt: skip


def task_page(site: Site, run: RunRow, task: TaskRow, token: str | None) -> str:
    run_id, tid = run["id"], task["task_id"]
    attempts = site.store.attempts(run_id, tid)
    last = attempts[-1] if attempts else None
    state = shown_task_state(shown_state(site.state_dir, run), task["state"])
    decide = state == "awaiting_approval" and approvals_available()
    facts = dl([
        ("state", badge(state)), ("group", esc(task["group_id"] or "")),
        ("agent", esc(task["agent"] or "")), ("attempts", str(task["attempts"])),
        ("run", f"<a href='{href(f'/runs/{run_id}', token)}'>{esc(run_id)}</a>"),
        ("merge", short(task["merge_commit"])), ("error", esc(task["error"] or "")),
    ])  # fmt: skip
    log = log_chunk(last, None) if last else {"text": "", "offset": 0, "done": False}
    body = (
        f"<h1>Task {esc(tid)}</h1><section id=header>{facts}</section>"
        + (_decide(run_id, tid, token) if decide else "")
        + "<h2>Attempts</h2>"
        + table(["#", "state", "started", "duration", "exit", "cost", "tokens", "model",
                 "commit", "error"], _attempt_rows(attempts), cls="attempts")
        + f"<h2>Log</h2><pre id=log class=log data-attempt='{last['n'] if last else ''}' "
        f"data-offset='{log['offset']}' data-done='{int(bool(log['done']))}'>"
        f"{esc(log['text'])}</pre>"
        + f"<h2>Validators</h2>{_checks(last)}"
        + f"<h2>Instructions</h2>{_instructions(site, run_id, last)}"
        + f"<h2>Diff</h2>{_diff(site, run, task)}"
    )
    attrs = f" data-run='{esc(run_id)}' data-task='{esc(tid)}' data-view=task"
    return page(f"{tid} · run {run_id}", body, token, attrs=attrs)
