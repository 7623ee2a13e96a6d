"""After-the-fact care of runs: rollback, clean and export (DESIGN §3, §4).

* ``rollback_run`` moves the integration branch back to where it stood before a run, with a
  compare-and-swap, after parking the old head under ``refs/conductor/rollback/<run>/<stamp>``
  so nothing becomes unreachable. ``rollback_task`` reverts one task's merge with a revert
  commit instead. Either way the tasks whose merges left the branch are marked
  ``rolled_back`` in the store, so the next ``conductor run`` no longer counts them up to date.
* ``clean`` removes the worktrees, attempt branches and ``refs/conductor/*`` that no live run
  owns, never a worktree with uncommitted changes unless forced.
* ``export_record`` / ``export_markdown`` render a stored run for machines and people.

Nothing here touches the user's branches, index or working tree, and every refusal
(``UserError``) happens before the first change.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conductor import gitcmd
from conductor.errors import ConductorError, InfraError, MergeConflict, UserError
from conductor.store import Row, Store
from conductor.workspace import BranchMoved, Workspace

STALE_S = 30.0  # a heartbeat older than this no longer proves a runner is alive
ROLLBACK_NS = "refs/conductor/rollback/"
ATTEMPTS_MARK = ".attempts/"
EXPORT_VERSION = 1
_NO_HOOKS = ("-c", "core.hooksPath=/dev/null")  # update-ref runs reference-transaction hooks


# ---- liveness ---------------------------------------------------------------------------


def is_live(state_dir: Path, run: Row, now: float | None = None) -> bool:
    """A runner may be driving ``run`` right now, so what it owns must not be touched.

    Either sign of life counts, the runner's lock or a heartbeat under ``STALE_S`` old: for
    a destructive command a false "live" costs a retry later, a false "dead" an agent's work.
    """
    if run["state"] not in ("running", "cancelling"):
        return False
    if (now or time.time()) - (run["heartbeat"] or 0) < STALE_S:
        return True
    from conductor.liveness import lock_held

    return lock_held(state_dir, str(run["id"]))


# ---- rollback ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollback:
    """What a rollback did; ``describe()`` is the line the CLI prints."""

    run_id: str
    branch: str
    old_head: str
    new_head: str
    saved_ref: str | None = None  # whole run: the ref that keeps the old head reachable
    reverted: str | None = None  # one task: the merge commit that was reverted
    tasks: tuple[tuple[str, str], ...] = ()  # (run, task) now marked rolled_back

    def describe(self) -> str:
        names = ", ".join(t if r == self.run_id else f"{t} (run {r})" for r, t in self.tasks)
        if self.reverted is not None:
            return (
                f"reverted {names} of run {self.run_id} on {self.branch}: revert commit "
                f"{self.new_head[:12]} undoes merge {self.reverted[:12]}; "
                "the next `conductor run` redoes it"
            )
        return (
            f"integration branch {self.branch} moved back from {self.old_head[:12]} to "
            f"{self.new_head[:12]}; rolled back: {names or 'nothing'}\n"
            f"the old head is kept at {self.saved_ref}: restore with "
            f"`git update-ref refs/heads/{self.branch} {self.old_head} {self.new_head}`"
        )


@dataclass(frozen=True)
class _Commit:
    sha: str
    run: str | None  # its Conductor-Run trailer


def rollback_run(ws: Workspace, store: Store, run_id: str, *, force: bool = False) -> Rollback:
    """Move the run's integration branch back to where it was before the run.

    Refused while the run (or another on the same branch) is live, when the branch is
    checked out somewhere, and, unless ``force``, when commits of later runs sit on top.
    """
    run = _run_row(store, run_id)
    branch = run["integration_branch"]
    _check_quiet(ws, store, run)
    head = ws.rev(f"refs/heads/{branch}")
    if head is None:
        raise UserError(f"integration branch {branch} no longer exists: nothing to roll back")
    if not any(t["merge_commit"] for t in store.tasks(run_id)):
        raise UserError(f"run {run_id} merged nothing into {branch}: nothing to roll back")
    target = _before(ws, store, run)
    dropped = _first_parent_log(ws.root, head, target)
    if not any(c.run == run_id for c in dropped):
        raise UserError(
            f"nothing of run {run_id} is on {branch} any more",
            hint=f"was it rolled back already? see `git log --first-parent {branch}`",
        )
    later = [c for c in dropped if c.run != run_id]
    if later and not force:
        raise UserError(*_later_message(run_id, branch, later))
    saved = _save_head(ws, run_id, head)
    try:
        ws.rollback_branch(branch, target, expected_head=head)
    except BranchMoved:
        _delete_exact(ws.root, {saved: head})
        msg = f"{branch} moved while rolling back; nothing changed"
        raise UserError(msg, hint="try again") from None
    marked = _mark_dropped(store, branch, {c.sha for c in dropped})
    store.emit(run_id, "rolled_back", branch=branch, old_head=head, new_head=target, ref=saved)
    return Rollback(run_id, branch, head, target, saved_ref=saved, tasks=tuple(marked))


def rollback_task(ws: Workspace, store: Store, run_id: str, task_id: str) -> Rollback:
    """Revert one task's merge on the integration branch with a revert commit."""
    run = _run_row(store, run_id)
    branch = run["integration_branch"]
    merge = _merged_task(store, run, task_id)
    _check_quiet(ws, store, run)
    if not ws.is_merged(branch, merge):
        raise UserError(
            f"the merge of {task_id} ({merge[:12]}) is no longer on {branch}",
            hint="the run (or one before it) was rolled back already",
        )
    trailers = {"Conductor-Run": run_id, "Conductor-Task": task_id, "Conductor-Revert": merge}
    subject = f"conductor: revert {task_id} of run {run_id}"
    try:
        new = ws.revert_merge(branch, merge, subject, trailers)
    except MergeConflict as exc:
        raise UserError(
            f"cannot revert {task_id} cleanly: later changes to {', '.join(exc.paths)} build on it",
            hint=f"roll back later work first, or the whole run (`conductor rollback {run_id}`)",
        ) from None
    store.update_task(run_id, task_id, state="rolled_back")
    store.emit(run_id, "rolled_back", task_id, merge_commit=merge, revert_commit=new)
    old = ws.rev(f"{new}^1") or ""
    return Rollback(run_id, branch, old, new, reverted=merge, tasks=((run_id, task_id),))


def _run_row(store: Store, run_id: str) -> Row:
    run = store.run(run_id)
    if run is None:
        raise UserError(f"no run `{run_id}`", hint="`conductor runs` lists them")
    return run


def _merged_task(store: Store, run: Row, task_id: str) -> str:
    """The merge commit of ``task_id`` in ``run``, or a UserError saying why there is none."""
    task = store.task(run["id"], task_id)
    if task is None:
        known = [t["task_id"] for t in store.tasks(run["id"])]
        from conductor.suggest import closest

        near = closest(task_id, known)
        hint = f"did you mean `{near}`?" if near else "tasks: " + ", ".join(known[:20])
        raise UserError(f"run {run['id']} has no task `{task_id}`", hint)
    if task["state"] == "rolled_back":
        raise UserError(f"task {task_id} of run {run['id']} is rolled back already")
    if not task["merge_commit"]:
        prior = store.last_success(run["name"], task_id)
        msg = f"task {task_id} was not merged in run {run['id']} (it is {task['state']})"
        raise UserError(msg, f"it was merged by run {prior['run_id']}" if prior else None)
    return str(task["merge_commit"])


def _check_quiet(ws: Workspace, store: Store, run: Row) -> None:
    """Refuse while a runner may move the branch, or while a worktree has it checked out."""
    branch = run["integration_branch"]
    if is_live(ws.state_dir, run):
        raise UserError(
            f"run {run['id']} is still running",
            hint=f"wait for it to end, or `conductor cancel {run['id']}` first",
        )
    for other in store.runs(limit=-1):
        if other["integration_branch"] == branch and is_live(ws.state_dir, other):
            raise UserError(
                f"run {other['id']} is running on {branch}",
                hint=f"wait for it to end, or `conductor cancel {other['id']}` first",
            )
    for path, checked_out in ws.list_worktrees():
        if checked_out == branch:
            raise UserError(
                f"{branch} is checked out at {path}",
                hint="switch that worktree to another branch first: conductor never moves "
                "a branch under someone's files",
            )


def _before(ws: Workspace, store: Store, run: Row) -> str:
    """Where the integration branch stood when the run started."""
    if run["base_commit"]:
        return str(run["base_commit"])
    # Not recorded (a crash right after the run row was written): the first parent of the
    # run's first merge is the same commit, and deleting the branch could lose older runs.
    merged = [t for t in store.tasks(run["id"]) if t["merge_commit"]]
    first = min(merged, key=lambda t: t["finished"] or 0)["merge_commit"]
    parent = ws.rev(f"{first}^1")
    if parent is None:
        raise UserError(f"cannot tell where {run['integration_branch']} was before {run['id']}")
    return parent


def _later_message(run_id: str, branch: str, later: list[_Commit]) -> tuple[str, str]:
    by_run = Counter(c.run for c in later if c.run)
    foreign = sum(1 for c in later if not c.run)
    parts = [f"{r} ({n} commit{'s' if n > 1 else ''})" for r, n in by_run.items()]
    if foreign:
        parts.append(f"{foreign} commit{'s' if foreign > 1 else ''} not made by conductor")
    first = next((c.run for c in later if c.run), None)  # newest first
    hint = f"roll back `{first}` first, or " if first else ""
    hint += "pass --force to drop them too (the current head is kept at a ref)"
    return f"later work sits on top of run {run_id} on {branch}: " + ", ".join(parts), hint


def _first_parent_log(root: Path, head: str, stop: str) -> list[_Commit]:
    """Commits on ``head``'s first-parent line that ``stop`` lacks, newest first."""
    fmt = "--format=%H%x1f%(trailers:key=Conductor-Run,valueonly,separator=%x2c)"
    args = ["log", "--first-parent", "-z", fmt, head, f"^{stop}", "--"]
    out = gitcmd.git(args, root, c_locale=True)
    commits = []
    for record in filter(None, out.split("\0")):
        sha, _, run = record.strip("\n").partition("\x1f")
        commits.append(_Commit(sha, run.strip().split(",")[0] or None))
    return commits


def _save_head(ws: Workspace, run_id: str, head: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    ref, n = f"{ROLLBACK_NS}{run_id}/{stamp}", 1
    while ws.rev(ref) is not None:  # two rollbacks within a second
        n += 1
        ref = f"{ROLLBACK_NS}{run_id}/{stamp}-{n}"
    ws.set_ref(ref, head)
    return ref


def _mark_dropped(store: Store, branch: str, dropped: set[str]) -> list[tuple[str, str]]:
    """Mark every succeeded task (of any run on ``branch``) whose merge left it."""
    marked = []
    for run in store.runs(limit=-1):
        if run["integration_branch"] != branch:
            continue
        for t in store.tasks(run["id"]):
            if t["state"] == "succeeded" and t["merge_commit"] in dropped:
                store.update_task(run["id"], t["task_id"], state="rolled_back")
                store.emit(run["id"], "rolled_back", t["task_id"], merge_commit=t["merge_commit"])
                marked.append((run["id"], t["task_id"]))
    return marked


# ---- clean ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    kind: str  # worktree | directory | branch | ref
    name: str  # a path relative to the repository, or a ref name
    why: str = ""  # for kept items: the reason


@dataclass
class CleanReport:
    dry_run: bool
    removed: list[Item] = field(default_factory=list)
    kept: list[Item] = field(default_factory=list)

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        out = [f"{verb} {i.kind} {i.name}" for i in self.removed]
        return out + [f"kept {i.kind} {i.name}: {i.why}" for i in self.kept]

    def summary(self) -> str:
        def counts(items: list[Item]) -> str:
            c = Counter(i.kind for i in items)
            return ", ".join(f"{n} {_plural(k, n)}" for k, n in c.items()) or "nothing"

        verb = "would remove" if self.dry_run else "removed"
        text = f"clean: {verb} {counts(self.removed)}"
        text += f"; kept {counts(self.kept)}" if self.kept else ""
        return text + (" (dry run: nothing changed)" if self.dry_run else "")


def _plural(kind: str, n: int) -> str:
    if n == 1:
        return kind
    return kind[:-1] + "ies" if kind.endswith("y") else kind + ("es" if kind.endswith("h") else "s")


@dataclass
class _Sweep:
    """What one clean pass decided, before it acts."""

    ws: Workspace
    live: set[str]
    report: CleanReport
    registered: set[str] = field(default_factory=set)  # real paths of every git worktree
    busy: dict[str, Path] = field(default_factory=dict)  # branch -> worktree keeping it
    kept_attempts: set[str] = field(default_factory=set)  # "<run>/<task>/<n>/" ref prefixes
    worktrees: list[tuple[Path, str | None]] = field(default_factory=list)  # with branch
    strays: list[Path] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)  # ref -> expected sha

    def rel(self, path: Path) -> str:
        try:
            return str(Path(os.path.realpath(path)).relative_to(os.path.realpath(self.ws.root)))
        except ValueError:
            return str(path)

    def keep(self, kind: str, name: str, why: str) -> None:
        self.report.kept.append(Item(kind, name, why))

    def remove(self, kind: str, name: str) -> None:
        self.report.removed.append(Item(kind, name))


def clean(
    ws: Workspace,
    store: Store | None,
    *,
    dry_run: bool = False,
    force: bool = False,
    everything: bool = False,
) -> CleanReport:
    """Remove worktrees, attempt branches and refs that no live run owns (see the CLI help)."""
    runs = store.runs(limit=-1) if store is not None else []
    sweep = _Sweep(ws, {r["id"] for r in runs if is_live(ws.state_dir, r)}, CleanReport(dry_run))
    _pick_worktrees(sweep, force)
    _pick_strays(sweep, force)
    _pick_branches(sweep, _attempt_rows(store, runs), runs, everything)
    _pick_refs(sweep, everything)
    if not dry_run:
        _apply(sweep)
    return sweep.report


def _pick_worktrees(sweep: _Sweep, force: bool) -> None:
    home = os.path.realpath(sweep.ws.state_dir / "worktrees") + os.sep
    for path, branch in sweep.ws.list_worktrees():
        real = os.path.realpath(path)
        sweep.registered.add(real)
        run, _, name = (
            real[len(home) :].partition(os.sep) if real.startswith(home) else ("", "", "")
        )
        why = "" if run else "not conductor's"
        if run in sweep.live:
            why = f"run {run} is live"
        elif run and path.exists() and not name.startswith("gate-") and not force:
            why = _dirty_reason(sweep.ws, path)  # group gates are throwaway checkouts
        if not why:
            sweep.worktrees.append((path, branch))
            sweep.remove("worktree", sweep.rel(path))
            continue
        if run:
            sweep.keep("worktree", sweep.rel(path), why)
            task, _, n = name.rpartition("-")
            sweep.kept_attempts.add(f"{run}/{task}/{n}/")
        if branch:
            sweep.busy[branch] = path


def _dirty_reason(ws: Workspace, path: Path) -> str:
    try:
        dirty = ws.is_dirty(path)
    except ConductorError as exc:
        return f"cannot tell whether it has uncommitted changes ({exc}); --force removes it"
    return "it has uncommitted changes; --force removes it" if dirty else ""


def _pick_strays(sweep: _Sweep, force: bool) -> None:
    """Entries under .conductor/worktrees/<run>/ that git does not know as worktrees."""
    home = sweep.ws.state_dir / "worktrees"
    for run_dir in sorted(home.iterdir()) if home.is_dir() else []:
        if run_dir.name in sweep.live or not run_dir.is_dir():
            continue
        for entry in sorted(run_dir.iterdir()):
            if os.path.realpath(entry) in sweep.registered:
                continue
            if force:
                sweep.strays.append(entry)
                sweep.remove("directory", sweep.rel(entry))
            else:
                why = "not a git worktree (it may hold salvaged files); --force deletes it"
                sweep.keep("directory", sweep.rel(entry), why)


def _attempt_rows(store: Store | None, runs: list[Row]) -> list[tuple[Row, Row]]:
    """(run, attempt) for every recorded attempt, oldest run first."""
    if store is None:
        return []
    ordered = sorted(runs, key=lambda r: r["started"])
    return [(r, a) for r in ordered for a in store.attempts(r["id"])]


def _pick_branches(
    sweep: _Sweep, attempts: list[tuple[Row, Row]], runs: list[Row], everything: bool
) -> None:
    known = {r["integration_branch"] for r in runs}
    newest = {r["name"]: r["id"] for r in sorted(runs, key=lambda r: r["started"])}
    latest = set(newest.values())
    # Attempt numbers restart in every run, so one branch name may have several records.
    owner = {a["branch"]: (r["id"], a["state"]) for r, a in attempts if a["branch"]}
    live_owned = {a["branch"] for r, a in attempts if r["id"] in sweep.live}
    unmerged: dict[str, set[str]] = {}
    for ref, sha in _list_refs(sweep.ws.root, "refs/heads/").items():
        name = ref.removeprefix("refs/heads/")
        integration = _attempt_of(name, known)
        if integration is None:
            continue
        run, state = owner.get(name, ("", ""))
        why = ""
        if name in sweep.busy:
            why = f"checked out at {sweep.rel(sweep.busy[name])}"
        elif name in live_owned:
            why = "a live run owns it"
        elif not everything and run in latest and state != "succeeded":
            if integration not in unmerged:
                unmerged[integration] = _unmerged(sweep.ws.root, integration)
            if ref in unmerged[integration]:
                why = (
                    f"unmerged work of a {state} attempt of the latest run {run} (--all removes it)"
                )
        if why:
            sweep.keep("branch", name, why)
        else:
            sweep.refs[ref] = sha
            sweep.remove("branch", name)


def _attempt_of(branch: str, known: set[str]) -> str | None:
    """The integration branch of an attempt branch ``<integration>.attempts/<task>/<n>``."""
    integration, mark, rest = branch.rpartition(ATTEMPTS_MARK)
    task, _, n = rest.partition("/")
    if not mark or not task or not n.isdigit():
        return None
    return integration if integration.startswith("conductor/") or integration in known else None


def _unmerged(root: Path, integration: str) -> set[str]:
    """Attempt branches of ``integration`` holding commits it lacks."""
    prefix = f"refs/heads/{integration}{ATTEMPTS_MARK}"
    head = f"refs/heads/{integration}"
    if not gitcmd.run(["rev-parse", "--verify", "--quiet", head], root).ok:
        return set(_list_refs(root, prefix))  # no integration branch: nothing is merged
    args = ["for-each-ref", "--format=%(refname)", f"--no-merged={head}", prefix]
    return set(gitcmd.git(args, root, c_locale=True).splitlines())


def _pick_refs(sweep: _Sweep, everything: bool) -> None:
    for ref, sha in _list_refs(sweep.ws.root, "refs/conductor/").items():
        rest = ref.removeprefix("refs/conductor/")
        run = rest.split("/", 1)[0]
        if ref.startswith(ROLLBACK_NS) and not everything:
            sweep.keep("ref", ref, "keeps a rolled-back head reachable (--all removes it)")
        elif run in sweep.live:
            sweep.keep("ref", ref, f"run {run} is live")
        elif any(rest.startswith(p) for p in sweep.kept_attempts):
            sweep.keep("ref", ref, "its attempt's worktree is kept")
        else:
            sweep.refs[ref] = sha
            sweep.remove("ref", ref)


def _apply(sweep: _Sweep) -> None:
    ws = sweep.ws
    for path, branch in sweep.worktrees:
        try:
            if path.exists():
                ws.remove_worktree(path, force=True)  # dirtiness was judged above
        except ConductorError as exc:  # keep going: one stuck worktree must not stop clean
            name = sweep.rel(path)
            sweep.report.removed.remove(Item("worktree", name))
            sweep.keep("worktree", name, f"could not remove it: {exc}")
            if branch and sweep.refs.pop(f"refs/heads/{branch}", None):
                sweep.report.removed.remove(Item("branch", branch))
                sweep.keep("branch", branch, f"checked out at {name}")
    for path in sweep.strays:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    gitcmd.git([*_NO_HOOKS, "worktree", "prune"], ws.root)
    _delete_exact(ws.root, sweep.refs)
    home = ws.state_dir / "worktrees"
    for run_dir in home.iterdir() if home.is_dir() else []:
        if run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()


def _list_refs(root: Path, prefix: str) -> dict[str, str]:
    """ref -> sha of every ref under ``prefix``."""
    out = gitcmd.git(["for-each-ref", "--format=%(refname) %(objectname)", prefix], root)
    return dict(line.rsplit(" ", 1) for line in out.splitlines() if line)


def _delete_exact(root: Path, refs: Mapping[str, str]) -> None:
    """Delete exactly ``refs`` in one transaction, each only if still at its expected sha.

    ``Workspace.delete_refs`` deletes a whole prefix; clean must spare some refs under one.
    """
    bad = [r for r in refs if not r.startswith(("refs/conductor/", "refs/heads/"))]
    if bad:
        raise ValueError(f"refusing to delete refs outside conductor's namespace: {bad}")
    if not refs:
        return
    script = "".join(f"delete {ref} {sha}\n" for ref, sha in refs.items())
    res = gitcmd.run([*_NO_HOOKS, "update-ref", "--stdin"], root, input=script)
    if not res.ok:
        raise InfraError(f"refs changed while cleaning, none deleted ({res.stderr.strip()})")


# ---- export -----------------------------------------------------------------------------


def export_record(store: Store, run_id: str, state_dir: Path) -> dict[str, Any]:
    """The full record of a run as one JSON-ready document (keys documented in the CLI)."""
    run = dict(_run_row(store, run_id))
    run["options"] = json.loads(run["options"] or "{}")
    run["live"] = is_live(state_dir, run)
    attempts = []
    for a in store.attempts(run_id):
        a = dict(a)
        a["checks"] = json.loads(a["checks"]) if a["checks"] else None
        attempts.append(a)
    return {
        "format": "conductor-run",
        "version": EXPORT_VERSION,
        "run": run,
        "tasks": store.tasks(run_id),
        "attempts": attempts,
        "events": store.events(run_id),
    }


def export_markdown(store: Store, run_id: str, root: Path) -> str:
    """The execution log; a store-only rendering when the workflow file no longer fits."""
    run = _run_row(store, run_id)
    wf = _workflow_of(root, run, (t["task_id"] for t in store.tasks(run_id)))
    if wf is not None:
        from conductor.report import render

        return render(store, run_id, wf)
    return render_from_store(store, run_id)


def _workflow_of(root: Path, run: Row, tasks: Iterable[str]) -> Any:
    """The run's workflow, or None when it no longer loads or no longer holds its tasks."""
    from conductor.spec import load_workflow

    try:
        wf = load_workflow(root / run["workflow"])
    except (ConductorError, OSError):
        return None
    if wf.name != run["name"] or any(t not in wf.tasks for t in tasks):
        return None
    return wf


def render_from_store(store: Store, run_id: str) -> str:
    """A header and the task table from the store alone (no workflow needed)."""
    from conductor.report import fmt_duration

    run = _run_row(store, run_id)
    tasks = store.tasks(run_id)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(Counter(t["state"] for t in tasks).items()))
    elapsed = (run["finished"] or time.time()) - run["started"]
    lines = [
        f"# Execution log: {run['name']}\n",
        "_Rendered from the state store: the workflow file no longer matches this run._\n",
        f"Run `{run['id']}` of `{run['workflow']}`: **{run['state']}**, started "
        f"{_when(run['started'])}, took {fmt_duration(elapsed)} on `{run['integration_branch']}`"
        f" from {_short(run['base_commit'])}; {counts}.\n",
        "## Tasks\n",
        "| Task | Group | Agent | State | Attempts | Duration | Merge | Error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in tasks:
        dur = t["finished"] - t["started"] if t["finished"] and t["started"] else None
        cells: tuple[object, ...] = (
            *(f"**{t['task_id']}**", t["group_id"] or "–", t["agent"] or "–", t["state"]),
            *(
                t["attempts"],
                fmt_duration(dur),
                _short(t["merge_commit"]),
                (t["error"] or "")[:120],
            ),
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _short(sha: str | None) -> str:
    return f"`{sha[:10]}`" if sha else "–"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "–"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
