"""Cleaning up (DESIGN §3, §4): remove the worktrees, attempt branches and
``refs/conductor/*`` that no live run owns, never a worktree with uncommitted changes unless
forced.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from conductor.errors import ConductorError
from conductor.git import refs
from conductor.git.pool import POOL_DIR
from conductor.git.workspace import Workspace
from conductor.state.layout import GATE_PREFIX, Layout
from conductor.state.liveness import may_be_live
from conductor.state.records import AttemptRow, RunRow
from conductor.state.store import Store


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
    kept_attempts: set[str] = field(default_factory=set)  # refs.attempt_refs prefixes
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
    sweep = _Sweep(
        ws, {r["id"] for r in runs if may_be_live(ws.state_dir, r)}, CleanReport(dry_run)
    )
    _pick_worktrees(sweep, force)
    _pick_strays(sweep, force)
    _pick_branches(sweep, _attempt_rows(store, runs), runs, everything)
    _pick_refs(sweep, everything)
    if not dry_run:
        _apply(sweep)
    return sweep.report


def _pick_worktrees(sweep: _Sweep, force: bool) -> None:
    home = os.path.realpath(Layout(sweep.ws.state_dir).worktrees_home) + os.sep
    for path, branch in sweep.ws.list_worktrees():
        real = os.path.realpath(path)
        sweep.registered.add(real)
        run, _, name = (
            real[len(home) :].partition(os.sep) if real.startswith(home) else ("", "", "")
        )
        if run == POOL_DIR:
            _pick_pooled(sweep, path)
            continue
        why = "" if run else "not conductor's"
        if run in sweep.live:
            why = f"run {run} is live"
        elif run and path.exists() and not name.startswith(GATE_PREFIX) and not force:
            why = _dirty_reason(sweep.ws, path)  # group gates are throwaway checkouts
        if not why:
            sweep.worktrees.append((path, branch))
            sweep.remove("worktree", sweep.rel(path))
            continue
        if run:
            sweep.keep("worktree", sweep.rel(path), why)
            task, _, n = name.rpartition("-")
            if n.isdigit():
                sweep.kept_attempts.add(refs.attempt_refs(run, task, int(n)))
        if branch:
            sweep.busy[branch] = path


def _pick_pooled(sweep: _Sweep, path: Path) -> None:
    """A worktree waiting in the pool: what it holds was committed before it was parked,
    so it goes whatever it holds, unless a live run may be taking it right now."""
    if sweep.live:
        sweep.keep("worktree", sweep.rel(path), "pooled for the next attempt of a live run")
        return
    sweep.worktrees.append((path, None))
    sweep.remove("worktree", sweep.rel(path))


def _dirty_reason(ws: Workspace, path: Path) -> str:
    try:
        dirty = ws.is_dirty(path)
    except ConductorError as exc:
        return f"cannot tell whether it has uncommitted changes ({exc}); --force removes it"
    return "it has uncommitted changes; --force removes it" if dirty else ""


def _pick_strays(sweep: _Sweep, force: bool) -> None:
    """Entries under .conductor/worktrees/<run>/ that git does not know as worktrees."""
    home = Layout(sweep.ws.state_dir).worktrees_home
    for run_dir in sorted(home.iterdir()) if home.is_dir() else []:
        if run_dir.name in sweep.live or not run_dir.is_dir():
            continue
        if run_dir.name == POOL_DIR and sweep.live:
            continue  # a live run's pool: a slot may be half way through a move
        for entry in sorted(run_dir.iterdir()):
            if os.path.realpath(entry) in sweep.registered:
                continue
            if force or run_dir.name == POOL_DIR:  # conductor's own, never the user's files
                sweep.strays.append(entry)
                sweep.remove("directory", sweep.rel(entry))
            else:
                why = "not a git worktree (it may hold salvaged files); --force deletes it"
                sweep.keep("directory", sweep.rel(entry), why)


def _attempt_rows(store: Store | None, runs: list[RunRow]) -> list[tuple[RunRow, AttemptRow]]:
    """(run, attempt) for every recorded attempt, oldest run first."""
    if store is None:
        return []
    ordered = sorted(runs, key=lambda r: r["started"])
    return [(r, a) for r in ordered for a in store.attempts(r["id"])]


def _pick_branches(
    sweep: _Sweep, attempts: list[tuple[RunRow, AttemptRow]], runs: list[RunRow], everything: bool
) -> None:
    known = {r["integration_branch"] for r in runs}
    newest = {r["name"]: r["id"] for r in sorted(runs, key=lambda r: r["started"])}
    latest = set(newest.values())
    # Attempt numbers restart in every run, so one branch name may have several records.
    owner = {a["branch"]: (r["id"], a["state"]) for r, a in attempts if a["branch"]}
    live_owned = {a["branch"] for r, a in attempts if r["id"] in sweep.live}
    unmerged: dict[str, set[str]] = {}
    for ref, sha in sweep.ws.ref_shas(refs.HEADS).items():
        name = refs.branch_of(ref) or ref
        integration = _attempt_of(name, known)
        if integration is None:
            continue
        parsed = refs.parse_attempt_branch(name)
        recorded_run = parsed.run_id if parsed is not None and parsed.run_id else ""
        run, state = owner.get(name, (recorded_run, ""))
        why = ""
        if name in sweep.busy:
            why = f"checked out at {sweep.rel(sweep.busy[name])}"
        elif name in live_owned:
            why = "a live run owns it"
        elif not everything and run in latest and state != "succeeded":
            if integration not in unmerged:
                unmerged[integration] = sweep.ws.unmerged_attempts(integration)
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
    """The integration branch of an attempt branch, when it is one conductor made: under
    ``conductor/`` or one a recorded run used."""
    parsed = refs.parse_attempt_branch(branch)
    if parsed is None:
        return None
    integration = parsed.integration
    ours = integration.startswith(refs.BRANCH_PREFIX) or integration in known
    return integration if ours else None


def _pick_refs(sweep: _Sweep, everything: bool) -> None:
    for ref, sha in sweep.ws.ref_shas(refs.NAMESPACE).items():
        run = refs.run_of(ref)
        if refs.is_rollback_ref(ref) and not everything:
            sweep.keep("ref", ref, "keeps a rolled-back head reachable (--all removes it)")
        elif run in sweep.live:
            sweep.keep("ref", ref, f"run {run} is live")
        elif any(ref.startswith(p) for p in sweep.kept_attempts):
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
            if branch and sweep.refs.pop(refs.branch_ref(branch), None):
                sweep.report.removed.remove(Item("branch", branch))
                sweep.keep("branch", branch, f"checked out at {name}")
    for path in sweep.strays:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    ws.prune_worktrees()
    ws.delete_exact(sweep.refs)
    home = Layout(ws.state_dir).worktrees_home
    for run_dir in home.iterdir() if home.is_dir() else []:
        if run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
