"""Re-runs replace (issue 10): a task that runs again on a branch holding its earlier
result leaves it holding the current result exactly once, and dependents build on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testing.repos import git, live_merges
from tests.testing.runner import cli, db_rows, run_json, task_states, write_workflow

CHANGELOG = """
version: 1
name: t
tasks:
  T: {{run: "echo '- {bullet}' >> CHANGELOG.md"}}
  D: {{run: "cat CHANGELOG.md > copy.txt", depends_on: [T]}}
"""


def show(repo: Path, path: str) -> str:
    return git(repo, "show", f"conductor/t:{path}")


def test_a_changed_task_replaces_its_earlier_result_and_its_dependents_follow(repo: Path) -> None:
    write_workflow(repo, CHANGELOG.format(bullet="retries, first try"))
    assert run_json(repo, "wf.yaml")[0] == 0
    write_workflow(repo, CHANGELOG.format(bullet="retries with backoff"))  # the user edits T

    code, events, err = run_json(repo, "wf.yaml")

    assert code == 0, err
    assert show(repo, "CHANGELOG.md") == "- retries with backoff"  # once, and only the new one
    assert show(repo, "copy.txt") == "- retries with backoff"  # D rebuilt on the new result
    assert len(live_merges(repo, "T")) == 1 and len(live_merges(repo, "D")) == 1
    [replaced] = [e for e in events if e["kind"] == "results_replaced"]
    assert replaced["data"]["tasks"] == ["D", "T"]
    subject = git(repo, "log", "-1", "--format=%s", replaced["data"]["commit"])
    assert subject.startswith("conductor: take out D, T for run")


@pytest.mark.slow  # an end-to-end run or two
def test_force_replaces_instead_of_stacking(repo: Path) -> None:
    write_workflow(repo, CHANGELOG.format(bullet="one bullet"))
    for _ in range(3):
        assert run_json(repo, "wf.yaml", "--force")[0] == 0
    assert show(repo, "CHANGELOG.md") == "- one bullet"
    assert len(live_merges(repo, "T")) == 1


@pytest.mark.slow  # an end-to-end run or two
def test_a_rolled_back_task_is_redone_by_the_next_run(repo: Path) -> None:
    write_workflow(repo, CHANGELOG.format(bullet="b"))
    assert run_json(repo, "wf.yaml")[0] == 0
    run = db_rows(repo, "SELECT id FROM runs")[0]["id"]
    assert cli(repo, "rollback", run, "--task", "D").returncode == 0
    assert "copy.txt" not in git(repo, "ls-tree", "--name-only", "conductor/t")

    code, _events, err = run_json(repo, "wf.yaml")

    assert code == 0, err
    assert task_states(repo) == {"T": "skipped", "D": "succeeded"}
    assert show(repo, "copy.txt") == "- b"
    assert len(live_merges(repo, "D")) == 1


LAYERED = """
version: 1
name: t
tasks:
  T: {{run: "echo '{line}' > notes.txt"}}
  U: {{run: "sed -i 's/$/ (reviewed)/' notes.txt", depends_on: [T]}}
"""


def test_a_result_later_work_built_on_cannot_be_taken_out_and_nothing_changes(
    repo: Path,
) -> None:
    write_workflow(repo, LAYERED.format(line="first draft"))
    assert run_json(repo, "wf.yaml")[0] == 0
    head = git(repo, "rev-parse", "conductor/t")
    runs = db_rows(repo, "SELECT id FROM runs")
    write_workflow(repo, LAYERED.format(line="second draft"))

    proc = cli(repo, "run", "wf.yaml", "--task", "T")  # U, which edited T's line, stays

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "cannot take the earlier result of T out of conductor/t" in proc.stderr
    assert "later work of U changed the same lines (notes.txt)" in proc.stderr
    assert "--from U" in proc.stderr and "Traceback" not in proc.stderr
    assert git(repo, "rev-parse", "conductor/t") == head
    assert db_rows(repo, "SELECT id FROM runs") == runs

    # the way out it names works: redo U too
    code, _events, err = run_json(repo, "wf.yaml", "--from", "T")
    assert code == 0, err
    assert show(repo, "notes.txt") == "second draft (reviewed)"
