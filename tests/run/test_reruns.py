"""Runs after runs (issue 10): attempts belong to their run, a re-run never meets,
reuses or builds on an earlier run's attempt, whatever `keep:` left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.testing.repos import git
from tests.testing.runner import cli, db_rows, run_json, task_states, write_workflow

FAILING = """
version: 1
name: t
defaults: {{retries: 0}}
workspace: {{keep: {keep}}}
tasks:
  A: {{run: "echo half-done > junk.txt; exit 1"}}
  B: {{run: "echo b > b.txt", depends_on: [A]}}
"""
FIXED = """
version: 1
name: t
defaults: {{retries: 0}}
workspace: {{keep: {keep}}}
tasks:
  A: {{run: "echo done > a.txt"}}
  B: {{run: "echo b > b.txt", depends_on: [A]}}
"""


def files_on(repo: Path, branch: str) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", branch).split())


SLOW = pytest.mark.slow
KEEP_AND_CLEAN = [
    pytest.param("on_failure", False, id="on_failure-no-clean"),  # the default, quick
    *(pytest.param(k, c, id=f"{k}-{'clean' if c else 'no-clean'}", marks=SLOW)
      for k in ("always", "on_failure", "never") for c in (False, True)
      if (k, c) != ("on_failure", False)),
]  # fmt: skip


@pytest.mark.parametrize(("keep", "clean_between"), KEEP_AND_CLEAN)
def test_a_fixed_task_runs_again_cleanly_after_a_failed_run(
    repo: Path, keep: str, clean_between: bool
) -> None:
    write_workflow(repo, FAILING.format(keep=keep))
    before = git(repo, "status", "--porcelain")
    code, _events, err = run_json(repo, "wf.yaml")
    assert code == 1, err
    first = db_rows(repo, "SELECT id FROM runs")[0]["id"]

    write_workflow(repo, FIXED.format(keep=keep))  # the user fixes the task
    if clean_between:
        assert cli(repo, "clean").returncode == 0
    code, _events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert task_states(repo) == {"A": "succeeded", "B": "succeeded"}
    # the new run's attempts are its own: named after it, started from the integration head
    second = db_rows(repo, "SELECT id FROM runs WHERE id != ?", first)[0]["id"]
    branches = [r["branch"] for r in db_rows(repo, "SELECT branch FROM attempts WHERE run_id = ?", second)]
    assert branches and all(f".attempts/{second}/" in b for b in branches)
    # the failed attempt's half-done work is not merged, the fixed work is
    assert files_on(repo, "conductor/t") >= {"a.txt", "b.txt"}
    assert "junk.txt" not in files_on(repo, "conductor/t")
    assert git(repo, "status", "--porcelain") == before  # the user's tree untouched


@pytest.mark.slow  # an end-to-end run or two
def test_force_reruns_a_succeeded_task_without_touching_its_kept_worktree(repo: Path) -> None:
    write_workflow(repo, FIXED.format(keep="always"))
    assert run_json(repo, "wf.yaml")[0] == 0
    assert run_json(repo, "wf.yaml", "--force")[0] == 0  # the demo's own suggestion
    runs = db_rows(repo, "SELECT id FROM runs ORDER BY started")
    assert len(runs) == 2
    worktrees = git(repo, "worktree", "list", "--porcelain")
    for r in runs:  # both runs' kept worktrees exist side by side
        assert f"/worktrees/{r['id']}/A-1" in worktrees


@pytest.mark.slow  # an end-to-end run or two
def test_ctrl_c_then_resume_then_force_merges_each_task_once(repo: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    from tests.testing.runner import conductor_argv

    gate = tmp_path / "go"  # the first attempt of SLOW waits for it; resumed ones do not
    write_workflow(repo, f"""
        version: 1
        name: t
        tasks:
          A: {{run: "echo '- a' >> log.md"}}
          SLOW: {{run: 'echo "- slow" >> log.md; test -e {gate} || {{ touch {gate}; sleep 1000; }}'}}
          AFTER: {{run: "cp log.md after.md", depends_on: [A, SLOW]}}
    """)  # fmt: skip
    proc = subprocess.Popen([*conductor_argv(), "run", "wf.yaml"], cwd=repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 20
    while not gate.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    run = db_rows(repo, "SELECT id FROM runs")[0]["id"]

    assert cli(repo, "resume", run).returncode == 0
    assert task_states(repo) == {"A": "succeeded", "SLOW": "succeeded", "AFTER": "succeeded"}
    code, _events, err = run_json(repo, "wf.yaml", "--force")
    assert code == 0, err
    # each line once: the forced run took the earlier results out before redoing them
    lines = sorted(git(repo, "show", "conductor/t:log.md").splitlines())
    assert lines == ["- a", "- slow"]
    merges = git(repo, "log", "--merges", "--first-parent", "--format=%s", "conductor/t")
    assert len(merges.splitlines()) == 6  # three tasks, merged by each of the two runs
