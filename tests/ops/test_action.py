"""The GitHub Action: action.yml's shape, and its run step (scripts/action_run.py) run as
GitHub's runner would, with a simulated GITHUB_* environment: the job summary holds the
execution log, the step's outputs are written, the artifact directory holds the log and
the run's record, and the step exits with conductor's exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.testing.paths import ROOT
from tests.testing.repos import make_repo
from tests.testing.runner import write_workflow

SCRIPT = ROOT / "scripts" / "action_run.py"
WF = """
version: 1
name: ci
defaults: {agent: sh}
agents: {sh: {preset: shell}}
groups:
  A: {}
  B: {depends_on: [A]}
tasks:
  one: {group: A, run: "echo one > one.txt"}
  two: {group: B, run: "echo two > two.txt"}
  bad: {group: B, run: "exit 3", retries: 0}
"""


def step(repo: Path, tmp: Path, **inputs: str) -> tuple[int, str, dict[str, str], str]:
    """Run the step as the runner does; (exit code, summary, outputs, stdout)."""
    summary, output, temp = tmp / "summary.md", tmp / "output.txt", tmp / "runner-temp"
    temp.mkdir(exist_ok=True)
    summary.write_text("earlier step's summary\n")  # appended to, never replaced
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output),
           "RUNNER_TEMP": str(temp), "GITHUB_ACTIONS": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           **{f"INPUT_{k.upper()}": v for k, v in inputs.items()}}  # fmt: skip
    proc = subprocess.run([sys.executable, str(SCRIPT)], cwd=repo, env=env, text=True,
                          capture_output=True, timeout=300)  # fmt: skip
    values = dict(line.split("=", 1) for line in output.read_text().splitlines())
    return proc.returncode, summary.read_text(), values, proc.stdout + proc.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "r")
    write_workflow(repo, WF, name="ci.yaml")
    return repo


def test_a_run_with_a_failure_fails_the_step_and_keeps_its_record(
    repo: Path, tmp_path: Path
) -> None:
    code, summary, out, printed = step(repo, tmp_path, workflow="ci.yaml")
    assert code == 1 and out["exit-code"] == "1" and out["state"] == "failed"
    assert summary.startswith("earlier step's summary\n# Execution log: ci")
    assert "bad" in summary and "```mermaid" in summary  # the whole log, graph and all
    assert "bad: FAILED" in printed  # the run's own lines went to the job's log
    art = Path(out["artifact-dir"])
    assert {p.name for p in art.iterdir()} == {"EXECUTION_LOG.md", f"{out['run-id']}.json"}
    record = json.loads(Path(out["export"]).read_text())
    assert record["run"]["id"] == out["run-id"] and record["format"] == "conductor-run"
    assert Path(out["log"]).read_text().startswith("# Execution log: ci")


def test_inputs_select_groups_and_pass_arguments(repo: Path, tmp_path: Path) -> None:
    code, summary, out, _ = step(repo, tmp_path, workflow="ci.yaml", batch_group="A",
                                 args="--concurrency 1")  # fmt: skip
    assert code == 0 and out["exit-code"] == "0" and out["state"] == "succeeded"
    record = json.loads(Path(out["export"]).read_text())
    assert [t["task_id"] for t in record["tasks"]] == ["one"]
    assert record["run"]["options"]["concurrency"] == 1
    assert "✅ **succeeded**" in summary


def test_a_workflow_that_does_not_start_says_why(repo: Path, tmp_path: Path) -> None:
    (repo / "ci.yaml").write_text(WF.replace("depends_on: [A]", "depends_on: [Z]"))
    code, summary, out, _ = step(repo, tmp_path, workflow="ci.yaml")
    assert code == 2 and out["exit-code"] == "2" and out["run-id"] == ""
    assert out["state"] == "not started" and out["artifact-dir"] == ""
    assert "the workflow did not start (exit 2)" in summary and "unknown group `Z`" in summary


def test_action_yml_is_a_composite_action_over_the_script() -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert set(action["inputs"]) == {"workflow", "batch-group", "args", "python-version"}
    assert action["inputs"]["workflow"]["required"] is True
    steps = action["runs"]["steps"]
    assert action["runs"]["using"] == "composite"
    uses = [s.get("uses", "") for s in steps]
    assert uses[0].startswith("actions/setup-python@") and uses[-1] == "actions/upload-artifact@v4"
    run = next(s for s in steps if s.get("id") == "run")
    assert "scripts/action_run.py" in run["run"] and set(run["env"]) == {
        "INPUT_WORKFLOW", "INPUT_BATCH_GROUP", "INPUT_ARGS"}
    assert "always()" in steps[-1]["if"]  # the record is kept when the run failed
    assert set(action["outputs"]) >= {"exit-code", "run-id", "state", "log", "export"}
