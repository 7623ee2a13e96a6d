"""workflows/modules.yaml, the example of issue 12's language, runs as its comments say."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tests.testing.paths import WORKFLOWS
from tests.testing.repos import git, make_repo
from tests.testing.runner import cli, latest_run, task_states

BRANCH = "conductor/modules"


def _repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    (repo / "workflows").mkdir()
    shutil.copy(WORKFLOWS / "modules.yaml", repo / "workflows" / "modules.yaml")
    return repo


def test_with_auto_approve_every_feature_plays_its_part(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    proc = cli(repo, "run", "workflows/modules.yaml", "--auto-approve")
    assert proc.returncode == 0, proc.stderr
    states = task_states(repo)
    assert states.pop("fix[module=search]") == "skipped"  # its when: is false
    assert set(states.values()) == {"succeeded"} and len(states) == 6
    report = git(repo, "show", f"{BRANCH}:reports/phase.txt")
    assert "scan found 3 TODOs in:\nauth\nbilling\nsearch\n" in report
    assert "migrate: succeeded, release: succeeded" in report
    assert git(repo, "show", f"{BRANCH}:modules/billing/notes.txt").count("DONE") == 2


def test_detached_the_release_waits_for_a_person(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    assert cli(repo, "run", "workflows/modules.yaml", "--detach").returncode == 0
    run_id = latest_run(repo)
    deadline = time.monotonic() + 60
    while task_states(repo).get("release") != "awaiting_approval":
        assert time.monotonic() < deadline, task_states(repo)
        time.sleep(0.2)
    assert task_states(repo)["report"] == "pending"  # it runs after the release settles
    assert "+version=2" in cli(repo, "diff", run_id, "release").stdout
    assert cli(repo, "approve", run_id, "release").returncode == 0
    while task_states(repo).get("report") != "succeeded":
        assert time.monotonic() < deadline, task_states(repo)
        time.sleep(0.2)
    assert git(repo, "show", f"{BRANCH}:VERSION").strip() == "version=2"
