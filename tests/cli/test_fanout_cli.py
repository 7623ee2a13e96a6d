"""`plan`, `list` and `graph` show a fan-out task's expansions beneath its id."""

from __future__ import annotations

import json
from pathlib import Path

from tests.testing.runner import cli, write_workflow

WORKFLOW = """
version: 1
name: fo
tasks:
  setup: {run: "true"}
  T:
    title: "Retries for {{ matrix.module }}"
    matrix: {module: [auth, billing]}
    max_parallel: 1
    run: "echo {{ matrix.module }}"
    depends_on: [setup]
  one: {run: "true", depends_on: ["T[module=auth]"]}
  all: {run: "true", depends_on: [T, one]}
"""


def test_plan_list_and_graph_group_expansions_under_their_task(tmp_path: Path) -> None:
    write_workflow(tmp_path, WORKFLOW)
    plan = cli(tmp_path, "plan", "wf.yaml")
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if "(matrix: 2 tasks, at most 1 at once)" in ln)
    assert lines[at].split()[:2] == ["2", "T"]  # wave 2: T, its expansions beneath
    assert lines[at + 1].split()[:1] == ["[module=auth]"] and "Retries for auth" in lines[at + 1]
    assert lines[at + 2].split()[:1] == ["[module=billing]"]

    listed = cli(tmp_path, "list", "wf.yaml", env={"COLUMNS": "120"}).stdout.splitlines()
    at = next(i for i, ln in enumerate(listed) if ln.startswith("T  "))
    assert "(matrix: 2 tasks, at most 1 at once)" in listed[at]
    assert listed[at + 1].startswith("  [module=auth] ")
    assert listed[-1].startswith("all ") and " T, one " in listed[-1]  # collapsed
    doc = json.loads(cli(tmp_path, "list", "wf.yaml", "--json").stdout)
    rows = {r["id"]: r for r in doc["tasks"]}
    assert rows["T[module=billing]"]["template"] == "T"
    assert rows["T[module=billing]"]["matrix"] == {"module": "billing"}
    assert rows["all"]["depends_on"] == ["T[module=auth]", "T[module=billing]", "one"]

    graph = cli(tmp_path, "graph", "wf.yaml").stdout
    assert '    subgraph T ["T (matrix: 2 tasks, at most 1 at once)"]' in graph
    assert '        T_module_auth_["T[module=auth]: Retries for auth"]' in graph
    edges = [line.strip() for line in graph.splitlines() if "-->" in line]
    assert edges == ["setup --> T", "T_module_auth_ --> one", "T --> all", "one --> all"]
    dot = cli(tmp_path, "graph", "wf.yaml", "--format", "dot").stdout
    assert 'subgraph "cluster_m_T" {' in dot
    assert '"setup" -> "T[module=auth]" [lhead="cluster_m_T"];' in dot


def test_selecting_a_fan_out_task_selects_all_its_expansions(tmp_path: Path) -> None:
    write_workflow(tmp_path, WORKFLOW)
    doc = json.loads(cli(tmp_path, "plan", "wf.yaml", "--task", "T", "--json").stdout)
    assert doc["waves"] == [["T[module=auth]", "T[module=billing]"]]
    assert doc["tasks"][0]["template"] == "T" and doc["tasks"][0]["matrix"] == {"module": "auth"}
    doc = json.loads(cli(tmp_path, "plan", "wf.yaml", "-t", "T[module=auth]", "--json").stdout)
    assert doc["waves"] == [["T[module=auth]"]]
