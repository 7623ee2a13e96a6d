"""`--repo PATH`: a workflow kept in one place runs against another repository; the
commands that read runs read them from there. Without it, a run happens in the
repository that holds the workflow file, wherever the command is typed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.testing.repos import git, make_repo
from tests.testing.runner import cli, write_workflow

WF = """
version: 1
name: elsewhere
defaults: {agent: sh}
agents: {sh: {preset: shell}}
tasks:
  one: {run: "echo one > one.txt", outputs: [one.txt]}
  two: {run: "cat one.txt > two.txt", depends_on: [one]}
"""


def test_a_workflow_runs_against_the_repository_named_by_repo(tmp_path: Path) -> None:
    plans = make_repo(tmp_path / "plans")
    target = make_repo(tmp_path / "target", {"README.md": "target\n"})
    write_workflow(plans, WF)
    before = git(plans, "rev-parse", "HEAD")
    proc = cli(plans, "run", "wf.yaml", "--repo", str(target))
    assert proc.returncode == 0, proc.stderr
    # the run happened in target: its branch, its state, its files
    assert git(target, "show", "conductor/elsewhere:two.txt") == "one"
    assert (target / ".conductor" / "state.db").is_file()
    assert ".conductor/" in (target / ".git" / "info" / "exclude").read_text()
    # and left the repository holding the workflow alone
    assert not (plans / ".conductor").exists()
    assert git(plans, "branch", "--list", "conductor/*") == ""
    assert git(plans, "rev-parse", "HEAD") == before
    # its runs are read from there too
    runs = json.loads(cli(plans, "runs", "--json", "--repo", str(target)).stdout)["runs"]
    assert [r["state"] for r in runs] == ["succeeded"]
    status = cli(tmp_path, "status", "--repo", str(target))
    assert status.returncode == 0 and "✔ succeeded" in status.stdout
    nothing = cli(plans, "status")
    assert nothing.returncode == 2 and "--repo PATH" in nothing.stderr
    # and plan knows what is up to date there
    plan = cli(plans, "plan", "wf.yaml", "--repo", str(target)).stdout
    assert plan.count("up to date") == 2


def test_without_repo_the_run_happens_where_the_workflow_file_is(tmp_path: Path) -> None:
    home = make_repo(tmp_path / "home")
    other = make_repo(tmp_path / "other")
    write_workflow(home, WF)
    proc = cli(other, "run", str(home / "wf.yaml"))  # typed in another repository
    assert proc.returncode == 0, proc.stderr
    assert git(home, "show", "conductor/elsewhere:two.txt") == "one"
    assert not (other / ".conductor").exists()


def test_a_repo_that_is_no_repository_is_refused_before_anything(tmp_path: Path) -> None:
    plans = make_repo(tmp_path / "plans")
    write_workflow(plans, WF)
    (tmp_path / "plain").mkdir()
    proc = cli(plans, "run", "wf.yaml", "--repo", str(tmp_path / "plain"))
    assert proc.returncode == 2
    assert "is not inside a git repository" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "plain" / ".conductor").exists() and not (plans / ".conductor").exists()
