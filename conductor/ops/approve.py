"""Approving or rejecting a task held before its merge, and showing what it would merge.

`approve` / `reject` run in any terminal and only record the decision in the store: the
task's state (``approved`` / ``rejected``, the message in its ``error``) and the event,
in one transaction that first checks the task is still waiting, so two reviewers cannot
both decide. The runner's heartbeat acts on it (:mod:`conductor.run.approval`), as it acts
on `cancel --task`; with no runner live the decision waits for `conductor resume`.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass

from conductor.errors import UserError
from conductor.spec.suggest import did_you_mean
from conductor.state.events import Emitter
from conductor.state.liveness import is_live
from conductor.state.records import AttemptRow, RunRow, TaskRow
from conductor.state.states import RUN_ENDED
from conductor.state.store import Store

AWAITING = "awaiting_approval"


@dataclass(frozen=True)
class Decision:
    tasks: list[str]  # the tasks decided, in the run's order
    live: bool  # a runner acts on it now; else at `conductor resume`


def approve(store: Store, run: RunRow, target: str) -> Decision:
    """Approve task ``target``, or every task of group ``target`` that waits."""
    with store.tx():
        tasks = _tasks(store, run)
        if target in tasks:
            chosen = [_waiting(tasks[target])]
        else:
            chosen = [t for t, row in tasks.items() if row["group_id"] == target]
            if not chosen:
                raise _unknown(run, target, [*tasks, *_groups(tasks)], "task or group")
            chosen = [t for t in chosen if tasks[t]["state"] == AWAITING]
            if not chosen:
                raise UserError(f"no task of group {target} is awaiting approval",
                                hint=_waiting_hint(run, tasks))  # fmt: skip
        emit = Emitter(store, run["id"])
        for t in chosen:
            store.update_task(run["id"], t, state="approved", error=None)
            emit("task_approved", t, by=_who())
    return Decision(chosen, is_live(store.path.parent, run))


def reject(store: Store, run: RunRow, task: str, message: str | None) -> Decision:
    """Reject ``task``: with a message it is retried with it as feedback, else it fails."""
    text = (message or "").strip() or None
    with store.tx():
        tasks = _tasks(store, run)
        if task not in tasks:
            if task in _groups(tasks):
                raise UserError(f"reject takes one task; `{task}` is a group",
                                hint=_waiting_hint(run, tasks))  # fmt: skip
            raise _unknown(run, task, list(tasks), "task")
        _waiting(tasks[task])
        store.update_task(run["id"], task, state="rejected", error=text)
        Emitter(store, run["id"])("task_rejected", task, by=_who(), message=text,
                                  retry=text is not None)  # fmt: skip
    return Decision([task], is_live(store.path.parent, run))


def allow_auto_approve(store: Store, run: RunRow) -> None:
    """`resume --auto-approve`: the resumed runner merges held tasks without waiting."""
    options = json.loads(run["options"] or "{}")
    if not options.get("auto_approve"):
        store.update_run(run["id"], options=json.dumps({**options, "auto_approve": True}))


def _tasks(store: Store, run: RunRow) -> dict[str, TaskRow]:
    if run["state"] in RUN_ENDED:
        raise UserError(f"run {run['id']} already ended ({run['state']}): nothing waits "
                        "for approval in it")  # fmt: skip
    return {t["task_id"]: t for t in store.tasks(run["id"])}


def _groups(tasks: dict[str, TaskRow]) -> list[str]:
    return list(dict.fromkeys(g for t in tasks.values() if (g := t["group_id"])))


def _waiting(row: TaskRow) -> str:
    if row["state"] != AWAITING:
        raise UserError(f"task {row['task_id']} is not awaiting approval (it is "
                        f"{row['state']})", hint=_state_hint(row))  # fmt: skip
    return row["task_id"]


def _state_hint(row: TaskRow) -> str | None:
    if row["state"] in ("approved", "rejected"):
        return "someone decided already; the runner acts on it (or at `conductor resume`)"
    return "a task waits for approval once its validators pass, if it has `approve: true`"


def _waiting_hint(run: RunRow, tasks: dict[str, TaskRow]) -> str:
    waiting = [t for t, row in tasks.items() if row["state"] == AWAITING]
    if not waiting:
        return f"no task of run {run['id']} is awaiting approval now"
    return "awaiting approval: " + ", ".join(waiting)


def _unknown(run: RunRow, name: str, known: list[str], what: str) -> UserError:
    return UserError(f"run {run['id']} has no {what} `{name}`",
                     hint=did_you_mean(name, known) or "`conductor status` lists them")  # fmt: skip


def _who() -> str | None:
    try:  # who decided, for the record; not an identity check
        return getpass.getuser()
    except (KeyError, OSError):
        return None


# -- diff -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patch:
    text: str  # the unified diff, as git wrote it
    what: str  # one line saying what it is against what


def task_patch(store: Store, run: RunRow, task: str, attempt: int | None) -> Patch:
    """What ``task`` would merge (held or unmerged) or merged, as a unified diff."""
    from conductor.git import diffs
    from conductor.git.workspace import Workspace

    row = store.task(run["id"], task)
    if row is None:
        known = [t["task_id"] for t in store.tasks(run["id"])]
        raise _unknown(run, task, known, "task")
    att = _attempt(store, run, row, attempt)
    repo = Workspace(store.path.parent.parent)
    if row["merge_commit"] and (attempt is None or att["state"] == "succeeded"):
        merge = row["merge_commit"]
        return Patch(diffs.merged_patch(repo, merge), f"{task}: merged as {merge[:12]} "
                     f"(attempt {att['n']})")  # fmt: skip
    post = att["post_commit"]
    assert post is not None  # _attempt picks only committed attempts
    branch = run["integration_branch"]
    text = diffs.pending_patch(repo, branch, post, att["pre_commit"])
    return Patch(text, f"{task} attempt {att['n']} ({att['state']}): {post[:12]} "
                 f"against {branch}")  # fmt: skip


def _attempt(store: Store, run: RunRow, row: TaskRow, n: int | None) -> AttemptRow:
    atts = [a for a in store.attempts(run["id"], row["task_id"]) if a["post_commit"]]
    if n is not None:
        picked = [a for a in atts if a["n"] == n]
        if not picked:
            have = ", ".join(str(a["n"]) for a in atts) or "none"
            raise UserError(f"task {row['task_id']} has no committed attempt {n}",
                            hint=f"committed attempts: {have}")  # fmt: skip
        return picked[0]
    if not atts:
        raise UserError(f"task {row['task_id']} has no committed attempt yet (it is "
                        f"{row['state']})", hint="`conductor diff` shows an attempt's commit "
                        "once its agent has exited")  # fmt: skip
    return atts[-1]
