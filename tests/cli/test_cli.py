"""The read-only commands through the CLI: exit codes, messages, JSON documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conductor.cli import app
from tests.testing.paths import BAD, ROOT
from tests.testing.repos import git, make_repo
from tests.testing.runner import cli, conductor_argv, write_workflow

BAD_FILES = sorted(BAD.glob("*.yaml"))
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_validate_accepts_every_example_workflow() -> None:
    for wf in sorted((ROOT / "workflows").glob("*.yaml")):
        code, out, err = invoke("validate", str(wf))
        assert code == 0, err
        assert "ok" in out


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_every_bad_file_exits_2_with_a_located_message(path: Path) -> None:
    code, _, err = invoke("validate", str(path))
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith(str(path)), err  # `path:line:col: message` (or `path: message`)


def test_typo_gets_a_hint_and_a_location(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text("version: 1\nname: x\ntasks:\n  A:\n    run: 'true'\n    dependson: []\n")
    code, _, err = invoke("validate", str(wf))
    assert code == 2
    assert f"{wf}:6:5:" in err and "did you mean `depends_on`" in err


def test_cycle_is_printed_as_a_path(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        "version: 1\nname: x\ntasks:\n"
        "  A: {run: 'true', depends_on: [B]}\n  B: {run: 'true', depends_on: [A]}\n"
    )
    code, _, err = invoke("validate", str(wf))
    assert code == 2
    assert "A -> B -> A" in err or "B -> A -> B" in err


def test_missing_file_is_a_clean_error() -> None:
    code, _, err = invoke("validate", "no/such/file.yaml")
    assert code == 2 and "no/such/file.yaml" in err and "Traceback" not in err


def test_plan_json_of_the_phase_workflow() -> None:
    code, out, err = invoke("plan", str(ROOT / "workflows" / "phase.yaml"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["waves"]) == 5
    assert doc["effort_hours"] == 81
    assert doc["critical_path"][0] in doc["waves"][0]
    assert sorted(t for w in doc["waves"] for t in w) == sorted(f"T{i}" for i in range(1, 23))


def test_plan_text_and_selection() -> None:
    phase = str(ROOT / "workflows" / "phase.yaml")
    code, out, _ = invoke("plan", phase)
    assert code == 0 and "22 tasks in 5 waves" in out and "effort 3d9h" in out
    assert out.splitlines()[out.splitlines().index("") + 1].startswith("WAVE  TASK  TITLE")
    code, out, _ = invoke("plan", phase, "--batch-group", "GROUP_B", "--json")
    doc = json.loads(out)
    assert sorted(t for w in doc["waves"] for t in w) == ["T4", "T5", "T6", "T7", "T8"]
    assert doc["external_deps"]  # GROUP_B needs GROUP_A done first
    code, _, err = invoke("plan", phase, "--batch-group", "GROUP_Z")
    assert code == 2 and "GROUP_Z" in err and "did you mean" in err


def test_list_and_graph() -> None:
    phase = str(ROOT / "workflows" / "phase.yaml")
    code, out, _ = invoke("list", phase, "--json")
    assert code == 0
    tasks = json.loads(out)["tasks"]
    assert len(tasks) == 22 and tasks[0]["state"] == "never run"
    code, out, _ = invoke("graph", phase)
    assert code == 0 and out.startswith("flowchart") and out.count("subgraph") == 5
    code, out, _ = invoke("graph", phase, "--format", "dot")
    assert code == 0 and out.startswith("digraph") and "cluster_GROUP_A" in out
    code, _, err = invoke("graph", phase, "--format", "png")
    assert code == 2 and "mermaid" in err


SHELL_WF = """
version: 1
name: t
tasks:
  A: {run: "echo a > a.txt"}
  B: {run: "true", depends_on: [A]}
"""


def test_validate_only_runs_nothing(repo: Path) -> None:
    write_workflow(repo, SHELL_WF)
    proc = cli(repo, "run", "wf.yaml", "--validate-only")
    assert proc.returncode == 0, proc.stderr
    assert "preflight ok" in proc.stdout and "2 tasks in 2 waves" in proc.stdout
    assert not (repo / ".conductor").exists()
    assert git(repo, "branch", "--list", "conductor/*") == ""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("base: nope\n", "base `nope` does not resolve"),
        ("agents: {mine: {command: [no-such-agent-cli]}}\n", "no-such-agent-cli"),
        ("agents: {sh2: {preset: shell, env: {K: '${UNSET_VAR_X}'}}}\n", "UNSET_VAR_X"),
    ],
)
def test_validate_only_reports_machine_problems(repo: Path, extra: str, message: str) -> None:
    body = SHELL_WF.replace("tasks:", extra + "tasks:")
    if "mine" in extra:
        body = body.replace('A: {run: "echo a > a.txt"}', "A: {agent: mine, prompt: hi}")
    if "sh2" in extra:
        body = body.replace('B: {run: "true"', 'B: {run: "true", agent: sh2')
    write_workflow(repo, body)
    proc = cli(repo, "run", "wf.yaml", "--validate-only")
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (repo / ".conductor").exists()


def test_claude_not_installed_is_reported_with_an_install_hint(repo: Path) -> None:
    write_workflow(repo, "version: 1\nname: t\ntasks:\n  A: {prompt: do it}\n")
    env = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [*conductor_argv(), "run", "wf.yaml", "--validate-only"],
        cwd=repo, env={**os.environ, **env}, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "claude" in proc.stderr and "npm install -g @anthropic-ai/claude-code" in proc.stderr


def test_outside_a_git_repository(tmp_path: Path) -> None:
    write_workflow(tmp_path, SHELL_WF)
    proc = cli(tmp_path, "run", "wf.yaml", "--validate-only")
    assert proc.returncode == 2 and "not inside a git repository" in proc.stderr


def test_run_refuses_bad_flags_before_touching_the_repo(repo: Path) -> None:
    write_workflow(repo, SHELL_WF)
    proc = cli(repo, "run", "wf.yaml", "--strategy", "fastest")
    assert proc.returncode == 2 and "unknown strategy" in proc.stderr
    proc = cli(repo, "run", "wf.yaml", "--task", "NOPE")
    assert proc.returncode == 2 and "NOPE" in proc.stderr
    assert not (repo / ".conductor").exists()


def test_installed_executable_and_python_m(tmp_path: Path) -> None:
    proc = subprocess.run([*conductor_argv(), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("conductor ")
    proc = subprocess.run(
        [sys.executable, "-m", "conductor", "validate", str(ROOT / "workflows" / "demo.yaml")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_schema_ships_with_the_package() -> None:
    from conductor.spec.schema import schema_path

    doc = json.loads(schema_path().read_text())
    assert doc["$schema"].endswith("2020-12/schema") and doc["$id"]


def test_status_without_runs_is_a_clean_error(tmp_path: Path) -> None:
    make_repo(tmp_path / "r")
    proc = cli(tmp_path / "r", "status")
    assert proc.returncode == 2 and "no conductor runs here" in proc.stderr


def test_help_lists_every_command() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    for name in ("validate", "plan", "list", "graph", "run", "status", "runs", "logs"):
        assert name in out
