"""Picking a run up again after its runner died (kill -9, power loss, Ctrl-C, cancel).

Every side effect of an attempt is either recorded before it is trusted or checked
here: orphaned processes are killed (by their process marker, and agents by group), a
worktree left behind is committed (no work is lost), and a merge that reached the
integration branch but not the store is found by its trailers, so nothing is merged twice.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from conductor.errors import ConductorError
from conductor.exec.procs import process_alive, stop_tree
from conductor.exec.sweep import sweep
from conductor.git.guard import repair, tampering
from conductor.git.workspace import Workspace
from conductor.state.records import AttemptRow, TaskRow
from conductor.state.states import ATTEMPT_OPEN, TASK_HELD, TASK_KEPT_ON_RESUME
from conductor.state.store import Store


@dataclass
class Recovered:
    states: dict[str, str]  # task -> state to start the scheduler from
    attempts: dict[str, int]  # task -> attempts made so far (numbering continues)
    failures: dict[str, int]  # task -> failed attempts that count against `retries`


def recover(ws: Workspace, store: Store, run_id: str, branch: str, keep: str) -> Recovered:
    # First, before anything reads or commits a worktree: every process a dead runner's
    # attempts, gates and hooks left (their leaders may be gone, their setsid'd children
    # not), found by the marker they all carry. Nothing of this runner carries it yet.
    sweep(f"{run_id}/", 2.0)
    rows = store.tasks(run_id)
    attempts: dict[str, list[AttemptRow]] = {}
    for a in store.attempts(run_id):
        attempts.setdefault(a["task_id"], []).append(a)
    _end_tmux_sessions(run_id)
    _stop_remote(ws, run_id, [a for atts in attempts.values() for a in atts])
    ws.repair_worktrees({Path(a["worktree"]).name for atts in attempts.values() for a in atts
                         if a["worktree"]})  # fmt: skip
    for atts in attempts.values():
        for a in atts:
            if a["state"] in ATTEMPT_OPEN:
                _close_open_attempt(ws, store, run_id, a, keep)
            else:
                _retire_leftover(ws, a, keep)
    out = Recovered({}, {}, {})
    for t in rows:
        tid = t["task_id"]
        atts = attempts.get(tid, [])
        out.attempts[tid] = max((a["n"] for a in atts), default=0)
        out.failures[tid] = sum(1 for a in atts if a["state"] == "failed")
        out.states[tid] = _settle(ws, store, run_id, branch, t, atts)
    return out


def _end_tmux_sessions(run_id: str) -> None:
    """Panes of a dead runner's tmux agents stay on the server (remain-on-exit)."""
    from conductor.exec.panes import kill_run_sessions

    with contextlib.suppress(OSError, ConductorError):
        kill_run_sessions(run_id)


def _stop_remote(ws: Workspace, run_id: str, attempts: list[AttemptRow]) -> None:
    """A dead runner's remote attempts may still run on the Ray cluster (their worker
    stops them once it notices the runner's hub is gone; Ray may have killed the worker
    first): stop whatever of them runs there, by their marker, on every live node. They
    are closed as interrupted below; their work never came back, so nothing merges."""
    from conductor.remote import RAY_HOST

    if not any((a["host"] or "").startswith(RAY_HOST) and a["state"] in ATTEMPT_OPEN
               for a in attempts):  # fmt: skip
        return
    from conductor.remote.call import sweep_everywhere
    from conductor.run.remote_work import tidy
    from conductor.spec.config import load_config

    config = load_config(ws.root, os.environ)
    with contextlib.suppress(ConductorError):  # out of reach: the workers stop them
        sweep_everywhere(str(config["ray.address"]), f"{run_id}/", tidy=tidy,
                         tidy_args=(run_id, str(config["ray.worker_dir"])))  # fmt: skip


def _retire_leftover(ws: Workspace, a: AttemptRow, keep: str) -> None:
    """A finished attempt whose worktree the dead runner had not removed yet."""
    worktree = Path(a["worktree"]) if a["worktree"] else None
    if worktree is None or not worktree.exists() or keep == "always":
        return
    if a["state"] == "awaiting_approval":  # its reviewer may look at it: the runner decides
        return
    if keep == "never" or a["state"] == "succeeded":
        with contextlib.suppress(ConductorError):
            ws.recycle_worktree(worktree)


def _close_open_attempt(ws: Workspace, store: Store, run_id: str, a: AttemptRow, keep: str) -> None:
    """The runner died during this attempt: stop its agent, keep its work."""
    if a["pid"] and process_alive(a["pid"], a["pid_start"]):
        stop_tree(a["pid"], 2.0)  # agents lead their own group
    worktree = Path(a["worktree"]) if a["worktree"] else None
    post = a["post_commit"]
    if worktree is not None and worktree.is_dir():
        try:
            pinned = ws.pin_attempt(worktree, a["branch"] or "")
            if tampering(pinned):  # what the agent did to .git must not decide where this goes
                repair(pinned)
            post = ws.commit_all(
                worktree,
                f"conductor: {a['task_id']} attempt {a['n']} (interrupted)",
                "The runner stopped during this attempt; this is what the agent had left.",
                {"Conductor-Run": run_id, "Conductor-Task": a["task_id"],
                 "Conductor-Attempt": str(a["n"]), "Conductor-Status": "interrupted"},
                pinned,
            )  # fmt: skip
            if keep != "always":
                ws.recycle_worktree(worktree, post)
        except ConductorError:
            # a half-made worktree (killed inside `git worktree add`): the agent never ran
            # there, so there is nothing to keep; drop it rather than leak it
            with contextlib.suppress(ConductorError):
                ws.remove_worktree(worktree, force=True)
    store.update_attempt(run_id, a["task_id"], a["n"], state="interrupted",
                         finished=time.time(), post_commit=post,
                         error="runner stopped during the attempt")  # fmt: skip


def _settle(ws: Workspace, store: Store, run_id: str, branch: str, t: TaskRow,
            atts: list[AttemptRow]) -> str:  # fmt: skip
    """The state a task resumes in; detects merges the store did not record."""
    state = t["state"]
    if state in TASK_KEPT_ON_RESUME:
        return str(state)
    merge = ws.find_merge(branch, run_id, t["task_id"]) if atts else None
    if merge is not None:
        store.update_task(run_id, t["task_id"], state="succeeded", merge_commit=merge,
                          finished=time.time(), error=None)  # fmt: skip
        return "succeeded"
    if atts and atts[-1]["state"] == "awaiting_approval" and state != "cancelled":
        # validated and committed, held for approval (or just about to be): it waits
        # again, with any decision taken meanwhile, and its agent does not run again
        held = state if state in TASK_HELD else "awaiting_approval"
        store.update_task(run_id, t["task_id"], state=held)
        return held
    if state != "pending":
        store.update_task(run_id, t["task_id"], state="pending", error=None)
    return "pending"
