"""`approve:` in the workflow file: on a task, a group or `defaults`, the most specific wins,
and it never makes finished work out of date (a person looks; the work is the same)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from conductor.agents.profiles import spec_fingerprint
from conductor.spec.load import load_workflow
from conductor.spec.model import Workflow

WF = """
version: 1
name: t
defaults: {approve: true}
groups:
  G: {approve: false}
  H: {}
tasks:
  plain: {run: "true"}
  own: {run: "true", approve: false}
  in_g: {run: "true", group: G}
  in_g_own: {run: "true", group: G, approve: true}
  in_h: {run: "true", group: H}
"""


def load(tmp_path: Path, text: str) -> Workflow:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return load_workflow(path)


def test_the_task_says_else_its_group_else_defaults(tmp_path: Path) -> None:
    wf = load(tmp_path, WF)
    approve = {t.id: t.approve for t in wf.tasks.values()}
    assert approve == {"plain": True, "own": False, "in_g": False, "in_g_own": True,
                       "in_h": True}  # fmt: skip
    assert wf.groups["G"].approve is False


def test_without_approve_nothing_waits(tmp_path: Path) -> None:
    wf = load(tmp_path, "version: 1\nname: t\ntasks:\n  A: {run: 'true'}\n")
    assert wf.tasks["A"].approve is False


def test_approve_does_not_make_finished_work_out_of_date(tmp_path: Path) -> None:
    before = load(tmp_path, "version: 1\nname: t\ntasks:\n  A: {run: 'true'}\n")
    after = load(tmp_path, "version: 1\nname: t\ntasks:\n  A: {run: 'true', approve: true}\n")
    assert spec_fingerprint(before, before.tasks["A"]) == spec_fingerprint(after, after.tasks["A"])
