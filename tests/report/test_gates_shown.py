"""A group's gate is a row of its own wherever a run is shown: `status` (table and JSON),
the live view, the execution log's tables and gantt, and `export`."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from conductor.console.live import LiveView
from conductor.spec.load import load_workflow
from conductor.state.store import Store
from tests.testing.repos import make_repo
from tests.testing.runner import cli, write_workflow

WF = """
version: 1
name: gates
defaults: {agent: sh}
agents: {sh: {preset: shell}}
groups:
  A: {validate: [{run: "test -f a.txt"}]}
  B: {depends_on: [A], validate: [{run: "printf 'E   the gate broke\\n'; exit 1"}]}
  C: {depends_on: [B]}
tasks:
  a: {group: A, run: "echo a > a.txt"}
  b: {group: B, run: "echo b > b.txt"}
  c: {group: C, run: "echo c > c.txt"}
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = make_repo(tmp_path_factory.mktemp("g") / "r")
    write_workflow(repo, WF)
    assert cli(repo, "run", "wf.yaml").returncode == 1
    return repo


def test_status_shows_each_gate_as_a_row(ran: Path) -> None:
    out = cli(ran, "status", env={"COLUMNS": "100"}).stdout
    assert re.search(r"✔ passed\s+gate A\s", out), out
    assert re.search(r"✖ failed\s+gate B\s.*E   the gate broke", out), out
    assert "gate B failed" in out  # and beneath the table, with its output
    lines = out.splitlines()
    assert lines.index(next(ln for ln in lines if "gate A" in ln)) == 1 + lines.index(
        next(ln for ln in lines if re.search(r"\sa\s", ln)))  # after its group's last task
    gates = {g["group"]: g for g in json.loads(cli(ran, "status", "--json").stdout)["gates"]}
    assert gates["A"]["state"] == "passed" and gates["A"]["duration_s"] is not None
    assert gates["B"]["state"] == "failed" and "the gate broke" in gates["B"]["output"]


def test_export_keeps_gate_state_duration_and_output(ran: Path) -> None:
    doc = json.loads(cli(ran, "export", "latest").stdout)
    gates = {g["group"]: g for g in doc["gates"]}
    assert gates["A"]["state"] == "passed" and gates["A"]["duration_s"] >= 0
    assert gates["B"]["state"] == "failed" and "the gate broke" in gates["B"]["output"]


def test_the_execution_log_has_gate_rows_and_gantt_bars(ran: Path) -> None:
    log = cli(ran, "export", "latest", "--format", "markdown").stdout
    assert "### A (1 succeeded; gate ✅ passed)" in log
    assert "### B (1 succeeded; gate ❌ failed)" in log
    assert re.search(r"\| \*\*gate\*\* \| 1 check: `run: test -f a.txt` \|.*✅ passed", log)
    assert re.search(r"\| \*\*gate\*\* \|.*❌ failed .*E the gate broke \|", log)
    assert re.search(r"^    gate A :a\d+, \d+, \d+$", log, re.M)  # a bar where it ran
    assert re.search(r"^    gate B :crit, a\d+, \d+, \d+$", log, re.M)


def test_the_live_view_shows_gates_as_rows(ran: Path) -> None:
    store = Store(ran / ".conductor" / "state.db")
    run = store.latest_run()
    assert run is not None
    wf = load_workflow(ran / "wf.yaml")
    console = Console(file=io.StringIO(), force_terminal=True, width=100, height=40)
    view = LiveView(console, wf, list(wf.tasks), {"a": 0, "b": 1, "c": 2})
    for e in store.events(run["id"]):
        view(e)
    store.close()
    console.print(view.renderable())
    frame = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console.file.getvalue())  # type: ignore[attr-defined]
    assert re.search(r"✔ passed\s+gate A", frame), frame
    assert re.search(r"✖ failed\s+gate B.*E   the gate broke", frame), frame
