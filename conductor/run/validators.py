"""Output gates: is a task's work done? Run in its worktree, or for a group on a temporary
worktree of the integration branch.

Every check runs even after one fails, so the retry's instructions can list every problem
at once instead of letting the agent discover them one attempt at a time.
"""

from __future__ import annotations

import glob
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conductor.exec.base import Executor, Limits, Request
from conductor.exec.local import LocalExecutor
from conductor.git import trees
from conductor.plan.scopes import matches, outside
from conductor.spec.model import Task, Validator

__all__ = [
    "CheckEnv",
    "CheckResult",
    "Committed",
    "check_inputs",
    "run_checks",
    "run_gate",
    "summarize_failures",
]

DEFAULT_TIMEOUT_S = 600.0  # a `run` check without its own `timeout` nor the task's
GRACE_S = 2.0  # a check that outlives its limit gets this long after TERM

_MAX_OUTPUT_LINES = 200
_SUMMARY_LINES = 30  # per failed check in summaries: enough to act on, short enough to read
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class CheckResult:
    name: str  # "outputs", "run: pytest -q", "exists: a, b", "changes: >= 1", "touches", ...
    ok: bool
    output: str  # why it failed, or the command's output (last ~200 lines)
    duration_s: float


def _missing(paths: Iterable[str], root: Path) -> list[str]:
    """The entries of ``paths`` with nothing on disk under ``root``; an entry may be a glob."""
    missing = []
    for entry in paths:
        if _GLOB_CHARS.search(entry):
            found = bool(glob.glob(entry, root_dir=root, recursive=True))
        else:
            found = (root / entry).exists()
        if not found:
            missing.append(entry)
    return missing


def _existence(name: str, paths: Sequence[str], root: Path, what: str) -> CheckResult:
    t0 = time.monotonic()
    missing = _missing(paths, root)
    output = f"{what}: " + ", ".join(missing) if missing else ""
    return CheckResult(name, not missing, output, time.monotonic() - t0)


@dataclass(frozen=True)
class Committed:
    """An attempt's post-commit, where its ``outputs`` are looked for: what the commit
    lacks never reaches the integration branch, whatever the worktree holds."""

    git_dir: Path  # the repository's own (common) git dir, never the worktree's .git
    commit: str


def _norm(entry: str) -> str:
    parts = [p for p in entry.split("/") if p not in ("", ".")]
    return "/".join(parts)


def _literal_prefix(entry: str) -> str:
    """The directories before a glob's first wildcard (``a/b/*.py`` → ``a/b``)."""
    fixed: list[str] = []
    for part in _norm(entry).split("/"):
        if _GLOB_CHARS.search(part):
            break
        fixed.append(part)
    return "/".join(fixed)


def _not_committed(entries: Sequence[str], where: Committed) -> list[str]:
    """The entries (paths or globs) with nothing in the commit's tree."""
    prefixes = [_literal_prefix(e) if _GLOB_CHARS.search(e) else _norm(e) for e in entries]
    # ls-tree takes literal prefixes; a glob without one (`*.txt`) needs the whole tree
    paths = trees.commit_paths(where.git_dir, where.commit, [] if "" in prefixes else prefixes)
    absent = []
    for entry in entries:
        if _GLOB_CHARS.search(entry):
            found = any(matches(p, [_norm(entry)]) for p in paths)
        else:
            found = _norm(entry) in paths
        if not found:
            absent.append(entry)
    return absent


def _on_disk(entry: str, root: Path) -> list[str]:
    """Worktree-relative paths ``entry`` names on disk (a glob: its first matches)."""
    if _GLOB_CHARS.search(entry):
        return sorted(glob.glob(_norm(entry), root_dir=root, recursive=True))[:20]
    return [_norm(entry)] if (root / entry).exists() else []


def _uncommitted(entries: Sequence[str], root: Path, where: Committed) -> list[str]:
    """Why each of ``entries`` (on disk, not in the commit) was left out of the commit."""
    found = {e: _on_disk(e, root) for e in entries}
    rules = trees.ignore_rules(where.git_dir, root, [p for ps in found.values() for p in ps])
    lines = []
    for entry, paths in found.items():
        rule = next((rules[p] for p in paths if p in rules), None)
        why = (
            f"ignored by {rule.describe()}, so it is not in the attempt's commit"
            if rule is not None
            else "not in the attempt's commit (what workspace.copy/symlink placed never is)"
        )
        lines.append(f"{entry}: in the worktree but {why} and would never reach the branch")
    if rules:
        lines.append("to deliver an ignored output: `git add -f` it and commit, or change the rule")
    return lines


def _outputs(outputs: Sequence[str], root: Path, where: Committed | None) -> CheckResult:
    """Declared outputs exist in the attempt's commit (on disk when there is none)."""
    if where is None:
        return _existence("outputs", outputs, root, "missing output(s)")
    t0 = time.monotonic()
    absent = _not_committed(outputs, where)
    left_out = [e for e in absent if _on_disk(e, root)]
    missing = [e for e in absent if e not in left_out]
    lines = ["missing output(s): " + ", ".join(missing)] if missing else []
    lines += _uncommitted(left_out, root, where) if left_out else []
    return CheckResult("outputs", not absent, "\n".join(lines), time.monotonic() - t0)


def check_inputs(task: Task, worktree: Path) -> CheckResult | None:
    """Do the task's declared inputs exist before it starts? None when it declares none."""
    if not task.inputs:
        return None
    return _existence("inputs", task.inputs, worktree, "missing input(s)")


def _contains(v: Validator, root: Path) -> CheckResult:
    t0, name = time.monotonic(), v.describe()
    path, pattern = v.path or "", v.pattern or ""
    try:
        text = (root / path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return CheckResult(name, False, f"missing file: {path}", time.monotonic() - t0)
    except OSError as exc:
        return CheckResult(name, False, f"cannot read {path}: {exc}", time.monotonic() - t0)
    try:
        found = re.search(pattern, text, re.MULTILINE) is not None
    except re.error as exc:
        return CheckResult(name, False, f"invalid pattern /{pattern}/: {exc}", 0.0)
    output = "" if found else f"{path} does not match /{pattern}/"
    return CheckResult(name, found, output, time.monotonic() - t0)


@dataclass(frozen=True)
class CheckEnv:
    """How ``run`` checks run: their environment, default time limit (the task's
    ``timeout``; a validator's own ``timeout`` wins), secret masking, the executor that
    starts them (a fake one in tests of the engine), the events that stop them (the
    attempt's cancel, Ctrl-C's kill_now) and the process marker of the attempt or gate."""

    env: Mapping[str, str]
    timeout_s: float = DEFAULT_TIMEOUT_S
    redact: Callable[[str], str] | None = None
    executor: Executor = field(default_factory=LocalExecutor)
    cancel: threading.Event | None = None
    kill_now: threading.Event | None = None
    mark: str | None = None


def _run(v: Validator, root: Path, how: CheckEnv) -> CheckResult:
    """``bash -c`` the command in ``root``; the last lines of its output explain a failure."""
    tail: deque[str] = deque(maxlen=_MAX_OUTPUT_LINES)
    req = Request(
        ["bash", "-c", v.run or ""],
        cwd=root,
        env=how.env,
        limits=Limits(timeout_s=v.timeout_s or how.timeout_s, grace_s=GRACE_S),
        on_line=tail.append,
        redact=how.redact,
        cancel=how.cancel,
        kill_now=how.kill_now,
        mark=how.mark,
    )
    res = how.executor.run(req)
    output = "\n".join(tail)
    if not res.ok:
        why = res.error or f"exit code {res.exit_code}"
        output = f"{output}\n{why}" if output else why
    return CheckResult(v.describe(), res.ok, output, res.duration_s)


def _changes(v: Validator, changed: Sequence[str] | None) -> CheckResult:
    name = f"changes: >= {v.min_files}"
    if changed is None:  # a group gate: there is no attempt whose diff could be counted
        return CheckResult(name, True, "skipped: not meaningful for a group gate", 0.0)
    ok = len(changed) >= v.min_files
    output = "" if ok else f"{len(changed)} file(s) changed, at least {v.min_files} required"
    return CheckResult(name, ok, output, 0.0)


def _one(v: Validator, root: Path, changed: Sequence[str] | None, how: CheckEnv) -> CheckResult:
    if v.kind == "run":
        return _run(v, root, how)
    if v.kind == "exists":
        return _existence(v.describe(), v.paths, root, "missing")
    if v.kind == "contains":
        return _contains(v, root)
    return _changes(v, changed)


def _touches(task: Task, changed: Sequence[str]) -> CheckResult:
    stray = outside(changed, task.touches)
    if not stray:
        return CheckResult("touches", True, "", 0.0)
    output = f"changed outside the task's scope ({', '.join(task.touches)}):\n" + "\n".join(
        f"  {p}" for p in stray
    )
    return CheckResult("touches", False, output, 0.0)


def run_checks(
    task: Task,
    worktree: Path,
    changed: Sequence[str],
    how: CheckEnv,
    committed: Committed | None = None,
) -> list[CheckResult]:
    """Every check of one attempt, in order: declared outputs exist (in ``committed``, the
    attempt's post-commit, when given), each ``validate`` entry, then the diff stays
    inside ``touches`` (skipped when the task declares none)."""
    results = []
    if task.outputs:
        results.append(_outputs(task.outputs, worktree, committed))
    for v in task.validate:
        results.append(_one(v, worktree, changed, how))
    if task.touches:
        results.append(_touches(task, changed))
    return results


def run_gate(validators: Sequence[Validator], worktree: Path, how: CheckEnv) -> list[CheckResult]:
    """A group's gate on a checkout of the integration branch; ``changes`` passes as skipped."""
    return [_one(v, worktree, None, how) for v in validators]


def summarize_failures(results: Sequence[CheckResult], max_lines: int = _SUMMARY_LINES) -> str:
    """The failed checks with the tail of each one's output; "" when all passed."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return ""
    blocks = [f"{len(failed)} check(s) failed:"]
    for r in failed:
        blocks.append(f"- {r.name}")
        lines = r.output.splitlines()
        if len(lines) > max_lines:
            skipped = f"... ({len(lines) - max_lines} earlier line(s) omitted)"
            lines = [skipped, *lines[-max_lines:]]
        blocks.extend(f"    {line}" for line in lines)
    return "\n".join(blocks)
