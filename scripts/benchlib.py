"""What the paired-task benchmarks (bench_sandbox.py, bench_ray.py) share: a one-commit
repository holding the workflow, and each attempt's duration as the store recorded it."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path


def seed_repo(root: Path, workflow: str) -> Path:
    """``root/repo``: a git repository with one commit holding ``wf.yaml``."""
    repo = root / "repo"
    repo.mkdir()

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    (repo / "README.md").write_text("bench\n")
    (repo / "wf.yaml").write_text(workflow)
    git("add", "-A")
    git("-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init")
    return repo


def attempt_durations(repo: Path) -> dict[str, float]:
    """Task id -> seconds its (last) attempt took, from the run's store."""
    con = sqlite3.connect(repo / ".conductor" / "state.db")
    try:
        rows = con.execute("SELECT task_id, started, finished FROM attempts").fetchall()
    finally:
        con.close()
    return {tid: float(end) - float(start) for tid, start, end in rows if end}
