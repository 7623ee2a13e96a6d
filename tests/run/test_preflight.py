"""Preflight refuses what would let a run reach outside the repository or move a branch
that is not conductor's: before anything is created (exit 2, no run row, no branch)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conductor.git.owned import owned_ref
from tests.testing.repos import git, write
from tests.testing.runner import cli, db_rows, write_workflow

SHELL = """
version: 1
name: t
{extra}
tasks:
  A: {{run: "echo a > a.txt"}}
"""


def refs_and_tree(repo: Path) -> tuple[str, str]:
    return git(repo, "for-each-ref"), git(repo, "status", "--porcelain", "--ignored")


def assert_nothing_started(repo: Path, before: tuple[str, str]) -> None:
    db = repo / ".conductor" / "state.db"
    assert not db.exists() or db_rows(repo, "SELECT id FROM runs") == []
    assert refs_and_tree(repo) == before


def refused(repo: Path, *args: str) -> str:
    before = refs_and_tree(repo)
    proc = cli(repo, "run", "wf.yaml", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert_nothing_started(repo, before)
    return proc.stderr


# -- the integration branch -------------------------------------------------------------


@pytest.mark.parametrize("adopt", [(), ("--adopt-branch",)])
def test_a_checked_out_integration_branch_is_refused(repo: Path, adopt: tuple[str, ...]) -> None:
    write_workflow(repo, SHELL.format(extra="integration_branch: main"))
    err = refused(repo, *adopt)
    assert f"integration branch `main` is checked out in the worktree at {repo}" in err
    assert "hint: set `integration_branch:`" in err


def test_a_branch_checked_out_in_a_linked_worktree_is_refused(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(other))
    write_workflow(repo, SHELL.format(extra="integration_branch: feature"))
    err = refused(repo, "--adopt-branch")
    assert f"checked out in the worktree at {other}" in err


@pytest.mark.parametrize("branch", ["mine", "conductor/t"])
def test_an_existing_branch_conductor_did_not_create_is_refused(repo: Path, branch: str) -> None:
    git(repo, "branch", branch)
    extra = f"integration_branch: {branch}" if branch != "conductor/t" else ""
    write_workflow(repo, SHELL.format(extra=extra))
    err = refused(repo)
    assert f"integration branch `{branch}` already exists and conductor did not create it" in err
    assert "--adopt-branch" in err
    dry = cli(repo, "run", "wf.yaml", "--validate-only", "--json")
    assert dry.returncode == 2
    [problem] = json.loads(dry.stdout)["preflight"]
    assert "conductor did not create it" in problem["message"]


@pytest.mark.slow  # an end-to-end run or two
def test_adopt_branch_takes_an_existing_branch_that_is_not_checked_out(repo: Path) -> None:
    git(repo, "branch", "mine")
    write_workflow(repo, SHELL.format(extra="integration_branch: mine"))
    assert cli(repo, "run", "wf.yaml", "--validate-only", "--adopt-branch").returncode == 0
    proc = cli(repo, "run", "wf.yaml", "--adopt-branch")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert git(repo, "show", "mine:a.txt") == "a"
    assert git(repo, "rev-parse", "--verify", owned_ref("mine"))
    # adopted once, it is conductor's from then on
    proc = cli(repo, "run", "wf.yaml", "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow  # two full runs
def test_conductors_own_branch_stays_its_own_without_a_reflog(repo: Path) -> None:
    write_workflow(repo, SHELL.format(extra=""))
    assert cli(repo, "run", "wf.yaml").returncode == 0
    git(repo, "reflog", "expire", "--expire=now", "--all")  # what gc does after 90 days
    proc = cli(repo, "run", "wf.yaml", "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow  # two full runs
def test_a_branch_created_before_markers_is_recognised_by_its_reflog(repo: Path) -> None:
    write_workflow(repo, SHELL.format(extra=""))
    assert cli(repo, "run", "wf.yaml").returncode == 0
    git(repo, "update-ref", "-d", owned_ref("conductor/t"))
    proc = cli(repo, "run", "wf.yaml", "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert git(repo, "rev-parse", "--verify", owned_ref("conductor/t"))  # claimed again


# -- prompt files -----------------------------------------------------------------------

AGENT = """
version: 1
name: t
agents:
  mine: {{command: ["true"]}}
tasks:
  A: {{agent: mine, prompt_file: {prompt}}}
"""


def test_a_prompt_file_linked_outside_the_repository_is_refused(repo: Path, tmp_path: Path) -> None:
    secret = write(tmp_path / "private" / "notes.md", "not for agents\n")
    os.symlink(secret, repo / "prompt.md")
    write_workflow(repo, AGENT.format(prompt="prompt.md"))
    err = refused(repo)
    assert err.startswith("wf.yaml:6:3: tasks.A.prompt_file: `prompt.md` resolves to ")
    assert f"{secret.resolve()}, outside the repository {repo}" in err
    assert "hint: prompt files must live in the repository" in err

@pytest.mark.slow  # a run each; the symlink case stays in the quick set

def test_a_prompt_file_climbing_out_is_refused(repo: Path, tmp_path: Path) -> None:
    write(tmp_path / "outside.md", "x\n")
    write_workflow(repo, AGENT.format(prompt="../outside.md"))
    err = refused(repo)
    assert "`../outside.md` resolves to" in err and "outside the repository" in err

@pytest.mark.slow  # a run each; the symlink case stays in the quick set

def test_a_prompt_file_in_the_git_directory_is_refused(repo: Path) -> None:
    write_workflow(repo, AGENT.format(prompt="prompts/../.git/HEAD"))
    (repo / "prompts").mkdir()
    err = refused(repo)
    assert "resolves to" in err and ".git/HEAD" in err


def test_prompt_files_anywhere_inside_the_repository_are_fine(repo: Path) -> None:
    write(repo / "prompts" / "a.md", "do it\n")
    (repo / "flows").mkdir()
    write_workflow(repo, AGENT.format(prompt="../prompts/a.md"), name="flows/wf.yaml")
    os.symlink("../prompts/a.md", repo / "flows" / "link.md")
    proc = cli(repo, "run", "flows/wf.yaml", "--validate-only")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (repo / "flows" / "wf.yaml").write_text(AGENT.format(prompt="link.md"))
    proc = cli(repo, "run", "flows/wf.yaml", "--validate-only")
    assert proc.returncode == 0, proc.stdout + proc.stderr
