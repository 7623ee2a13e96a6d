"""Golden tables: `plan`, `list`, `status` and `runs` at 80 and 160 columns, as a pipe
and a NO_COLOR terminal see them, from a fixed workflow and a fixed, hand-made store.

Snapshots: tests/snapshots/views/*.txt. After an intended change of a table, run
``UPDATE_SNAPSHOTS=1 python -m pytest tests/cli/test_views_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.report.test_report import RUN, T0, build_run
from tests.testing.paths import SNAPSHOTS
from tests.testing.runner import cli, conductor_argv

VIEWS = SNAPSHOTS / "views"
RUN2 = "20240501-110000-beef"
WF = """\
version: 1
name: demo-phase
description: Retry engine, scheduler and dashboard
defaults: {agent: claude}
agents:
  claude: {preset: claude-code}
  codex: {preset: codex}
  sh: {preset: shell}
groups:
  GROUP_A: {description: Foundation}
  GROUP_B: {description: Core services, depends_on: [GROUP_A], validate: [{run: pytest -q}]}
  GROUP_C: {description: Docs, depends_on: [GROUP_B]}
tasks:
  T1:
    title: PostgreSQL schema for accounts, sessions, audit events and the billing ledger
    group: GROUP_A
    role: database engineer
    prompt: Create the schema.
    estimate: 4h
  T2: {title: Config loader, group: GROUP_A, agent: codex, prompt: Load config., estimate: 45m}
  T3:
    title: Retry engine
    group: GROUP_B
    role: backend engineer with a long role name
    depends_on: [T1]
    prompt: Build it.
    estimate: 1h30m
  T4: {title: Scheduler, group: GROUP_B, prompt: Schedule., estimate: 90s}
  T5: {title: Docs, group: GROUP_C, prompt: Write docs.}
  title: {title: A task named like a gantt keyword, agent: sh, run: "true", estimate: 20s}
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("views")
    (root / "workflows").mkdir()
    (root / "workflows" / "demo.yaml").write_text(WF)
    f = build_run(root / ".conductor")  # the failed run of tests/report/test_report.py
    _second_run(f.store, f.db)
    f.store.close()
    yield root


def _second_run(store: object, db: Path) -> None:
    """A later run that found most tasks up to date and passed GROUP_B's gate."""
    from conductor.state.store import Store

    assert isinstance(store, Store)
    ids = ("T1", "T2", "T3", "T4", "T5", "title")
    rows = [(t, None, "claude", "pending", "h") for t in ids]
    store.create_run(RUN2, "workflows/demo.yaml", "demo-phase", "conductor/demo-phase", {}, rows)
    for t in ids:
        if t in ("T3", "T5"):
            store.update_task(RUN2, t, state="succeeded", attempts=1, started=T0 + 3610,
                              finished=T0 + 3700, merge_commit="9" * 40)  # fmt: skip
        else:
            store.update_task(RUN2, t, state="skipped", error=f"up to date (succeeded in run {RUN})")
    store.update_run(RUN2, state="succeeded", finished=T0 + 3720)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE runs SET started = ? WHERE id = ?", (T0 + 3600, RUN2))
    for ts, kind in ((T0 + 3650, "gate_started"), (T0 + 3662, "gate_passed")):
        row = store.emit(RUN2, kind, None, "info", group="GROUP_B")
        with sqlite3.connect(db) as con:
            con.execute("UPDATE events SET ts = ? WHERE id = ?", (ts, row["id"]))


ENV = {"TZ": "UTC", "NO_COLOR": "1"}
CASES = {
    "plan": ["plan", "workflows/demo.yaml"],
    "plan-group": ["plan", "workflows/demo.yaml", "--batch-group", "GROUP_B"],
    "list": ["list", "workflows/demo.yaml"],
    "status": ["status", RUN],
    "status-later": ["status", RUN2],
    "runs": ["runs"],
}


def check(name: str, text: str) -> None:
    snap = VIEWS / f"{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        snap.parent.mkdir(parents=True, exist_ok=True)
        snap.write_text(text)
    assert text == snap.read_text(), f"{name}: rerun with UPDATE_SNAPSHOTS=1 if meant"


@pytest.mark.parametrize("width", [80, 160])
@pytest.mark.parametrize("case", sorted(CASES))
def test_tables_match_their_snapshots(repo: Path, case: str, width: int) -> None:
    proc = cli(repo, *CASES[case], env={**ENV, "COLUMNS": str(width)})
    assert proc.returncode == 0, proc.stderr
    check(f"{case}-{width}", proc.stdout)
    lines = proc.stdout.splitlines()
    assert max(len(ln) for ln in lines) <= width, proc.stdout  # fits: nothing wraps
    assert not re.search(r"\x1b\[", proc.stdout)


def test_a_narrow_table_keeps_what_matters(repo: Path) -> None:
    text = (VIEWS / "plan-80.txt").read_text()
    assert "WAVE  TASK" in text and "EST" in text  # headed
    assert "PostgreSQL schema for account…" in text  # ellipsised, not cut short
    ests = re.findall(r" (\S+)$", text, re.M)  # the last column: the estimate
    assert {"4h", "45m", "20s", "1h30m", "1m30s"} <= set(ests) and "0.0h" not in text
    wide = (VIEWS / "plan-160.txt").read_text()
    assert "the billing ledger" in wide and "backend engineer with a long role name" in wide
    listed = (VIEWS / "list-80.txt").read_text()
    assert "↷ skipped" not in listed and "up to date" in listed  # named as people say it
    assert re.search(r"✔ passed +gate GROUP_B", (VIEWS / "status-later-80.txt").read_text())


needs_script = pytest.mark.skipif(shutil.which("script") is None, reason="no `script`")


def in_a_terminal(repo: Path, args: list[str], **env: str) -> str:
    """``conductor ARGS`` on a pseudo-terminal (util-linux `script`), its output."""
    command = " ".join([*conductor_argv(), *args])
    full = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")}
    full.update({"TZ": "UTC", "TERM": "xterm-256color", **env})
    proc = subprocess.run(["script", "-qec", command, "/dev/null"], cwd=repo, env=full,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    return proc.stdout.replace("\r\n", "\n")


@needs_script
@pytest.mark.parametrize("case", ["plan", "list", "status", "runs"])
def test_no_color_on_a_terminal_shows_the_same_table(repo: Path, case: str) -> None:
    plain = (VIEWS / f"{case}-80.txt").read_text()
    bare = in_a_terminal(repo, CASES[case], NO_COLOR="1", COLUMNS="80")
    assert not re.search(r"\x1b\[[0-9;]*m", bare) and bare.strip() == plain.strip()
    coloured = in_a_terminal(repo, CASES[case], COLUMNS="80")
    assert re.search(r"\x1b\[[0-9;]*m", coloured)  # the control: colour without NO_COLOR
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured).strip() == plain.strip()
