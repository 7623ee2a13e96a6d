"""`status` of a finished run: a failed task shows what failed (not the command that
checked it), a finished task no stale progress text."""

from __future__ import annotations

import json
from pathlib import Path

from tests.testing.repos import make_repo
from tests.testing.runner import cli, write_workflow

WF = """
version: 1
name: st
defaults: {agent: sh}
agents: {sh: {preset: shell}}
tasks:
  T1:
    run: "conductor progress 50 halfway; echo a > a.txt"
  T2:
    run: "echo b > b.txt"
    retries: 0
    validate:
      - run: "printf '=====\\nE   assert 0 == 4\\n\\nFAILED t.py::test_x - assert 0 == 4\\n=====\\n'; exit 1"
"""


def test_status_shows_the_failure_not_the_command(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    write_workflow(repo, WF)
    assert cli(repo, "run", "wf.yaml").returncode == 1
    out = cli(repo, "status").stdout
    assert "FAILED t.py::test_x - assert 0 == 4" in out
    assert "printf" not in out  # the validator's command is not what failed
    assert "halfway" not in out  # T1 finished: its progress text is stale
    doc = json.loads(cli(repo, "status", "--json").stdout)
    t1, t2 = doc["tasks"]
    assert t1["step"] is None and t1["progress"] is None
    assert t2["failure"] == ["E   assert 0 == 4", "FAILED t.py::test_x - assert 0 == 4"]
