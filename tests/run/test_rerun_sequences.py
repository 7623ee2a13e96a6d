"""Any sequence of runs, forced runs, edits, rollbacks, cleans and resumes leaves every
task whose last run succeeded on the integration branch exactly once, with its current
result (issue 10). A hypothesis state machine drives the real CLI on a real repository."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.testing.repos import git, live_merges, make_repo
from tests.testing.runner import cli, db_rows, run_json, write_workflow

WORKFLOW = """
version: 1
name: t
tasks:
  T: {{run: "echo '- {bullet}' >> CHANGELOG.md"}}
  D: {{run: "cat CHANGELOG.md > copy.txt", depends_on: [T]}}
  S: {{run: "echo s >> s.txt"}}
"""
BULLETS = ("retries", "retries with backoff", "retries with jitter")


def on_branch(repo: Path, path: str) -> str | None:
    files = git(repo, "ls-tree", "--name-only", "conductor/t").split()
    return git(repo, "show", f"conductor/t:{path}") if path in files else None


class Reruns(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.repo = make_repo(Path(tempfile.mkdtemp(prefix="reruns-")) / "repo")
        self.bullet = BULLETS[0]
        self.result: dict[str, str | None] = {"T": None, "D": None, "S": None}
        write_workflow(self.repo, WORKFLOW.format(bullet=self.bullet))

    def _ran(self, code: int, err: str) -> None:
        assert code == 0, err
        changelog = f"- {self.bullet}"
        self.result = {"T": changelog, "D": changelog, "S": "s"}

    @rule()
    def run(self) -> None:
        code, _events, err = run_json(self.repo, "wf.yaml")
        self._ran(code, err)

    @rule()
    def run_force(self) -> None:
        code, _events, err = run_json(self.repo, "wf.yaml", "--force")
        self._ran(code, err)

    @rule(bullet=st.sampled_from(BULLETS))
    def edit(self, bullet: str) -> None:
        self.bullet = bullet
        write_workflow(self.repo, WORKFLOW.format(bullet=bullet))

    @precondition(lambda self: self.result["D"] is not None)
    @rule()
    def rollback_d(self) -> None:
        [run] = [r["run_id"] for r in db_rows(self.repo,
                 "SELECT run_id FROM tasks WHERE task_id = 'D' AND merge_commit = ?",
                 live_merges(self.repo, "D")[0])]  # fmt: skip
        proc = cli(self.repo, "rollback", run, "--task", "D")
        assert proc.returncode == 0, proc.stderr
        self.result["D"] = None

    @rule()
    def clean(self) -> None:
        assert cli(self.repo, "clean").returncode == 0

    @precondition(lambda self: bool(db_rows_safe(self.repo)))
    @rule()
    def resume(self) -> None:
        proc = cli(self.repo, "resume", "latest")
        assert proc.returncode == 0, proc.stderr

    def teardown(self) -> None:
        import shutil

        shutil.rmtree(self.repo.parent, ignore_errors=True)

    @invariant()
    def each_result_is_on_the_branch_once(self) -> None:
        if not (self.repo / ".conductor" / "state.db").exists():
            return
        for task, path in (("T", "CHANGELOG.md"), ("D", "copy.txt"), ("S", "s.txt")):
            expected = self.result[task]
            assert len(live_merges(self.repo, task)) == (0 if expected is None else 1), task
            if expected is not None:
                assert on_branch(self.repo, path) == expected, task


def db_rows_safe(repo: Path) -> list[dict[str, object]]:
    if not (repo / ".conductor" / "state.db").exists():
        return []
    return db_rows(repo, "SELECT id FROM runs")


@pytest.mark.slow
def test_random_sequences_of_reruns_keep_each_result_on_the_branch_once() -> None:
    run_state_machine_as_test(
        Reruns, settings=settings(max_examples=8, stateful_step_count=6, deadline=None)
    )
