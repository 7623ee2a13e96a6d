"""`--help` reads in the order of a user's day, with typed placeholders, and the shell
completes commands, workflow files, run ids and task ids."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.testing.repos import make_repo
from tests.testing.runner import cli, write_workflow

DAY = ["validate", "plan", "run", "status", "watch", "logs", "runs"]


def commands(help_text: str) -> list[str]:
    body = help_text.split("Commands:", 1)[1]
    return [ln.split()[0] for ln in body.splitlines() if ln.startswith("  ") and ln.split()]


def test_commands_come_in_the_order_of_a_users_day(tmp_path: Path) -> None:
    listed = commands(cli(tmp_path, "--help").stdout)
    assert [c for c in listed if c in DAY] == DAY
    assert listed[0] in ("init", "validate")
    assert "_drive" not in listed  # hidden stays hidden


def test_every_placeholder_is_typed(tmp_path: Path) -> None:
    for name in commands(cli(tmp_path, "--help").stdout):
        text = cli(tmp_path, name, "--help").stdout
        options = [ln for ln in text.splitlines() if ln.startswith(("Usage:", "  -"))]
        assert not re.search(r"<\w+[ >]|\{\w+\}", "\n".join(options)), (name, text)
        usage = text.splitlines()[0]
        assert not re.search(r"\[[a-z]+\]", usage), (name, usage)  # `[run]`, not `[RUN]`
    logs = cli(tmp_path, "logs", "--help").stdout
    assert logs.startswith("Usage: conductor logs [OPTIONS] RUN TASK")
    assert "-a, --attempt N" in logs
    run = cli(tmp_path, "run", "--help").stdout
    assert "Usage: conductor run [OPTIONS] WORKFLOW" in run
    assert "-g, --batch-group GROUP" in run and "-t, --task TASK" in run
    assert "-j, --concurrency N" in run and "[at least 1]" in run and "x>=" not in run
    assert "Usage: conductor status [OPTIONS] [RUN]" in cli(tmp_path, "status", "--help").stdout


def test_shell_completion_is_installable(tmp_path: Path) -> None:
    assert "--install-completion" in cli(tmp_path, "--help").stdout
    script = cli(tmp_path, "--show-completion", "bash").stdout
    assert "_CONDUCTOR_COMPLETE" in script


def complete(repo: Path, line: str) -> list[str]:
    words = line.split(" ")
    env = {"_CONDUCTOR_COMPLETE": "complete_bash", "COMP_WORDS": line,
           "COMP_CWORD": str(len(words) - 1)}  # fmt: skip
    proc = cli(repo, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    repo = make_repo(tmp_path_factory.mktemp("c") / "r")
    (repo / "workflows").mkdir()
    write_workflow(repo, """
        version: 1
        name: comp
        defaults: {agent: sh}
        agents: {sh: {preset: shell}}
        tasks:
          build: {run: "echo a > a.txt"}
          check: {run: "echo b > b.txt", depends_on: [build]}
        """, name="workflows/comp.yaml")
    assert cli(repo, "run", "workflows/comp.yaml").returncode == 0
    run = json.loads(cli(repo, "runs", "--json").stdout)["runs"][0]["id"]
    return repo, run


def test_completion_offers_commands_workflows_runs_and_tasks(ran: tuple[Path, str]) -> None:
    repo, run = ran
    assert complete(repo, "conductor st") == ["status"]
    assert complete(repo, "conductor run w") == ["workflows/comp.yaml"]
    assert complete(repo, "conductor logs ") == [run, "latest"]
    assert complete(repo, f"conductor logs {run[:8]} ") == ["build", "check"]
    assert complete(repo, "conductor diff latest c") == ["check"]
    assert complete(repo, "conductor status --t") == ["--task"]
