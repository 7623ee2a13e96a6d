"""Helpers for end-to-end tests: write a workflow into a repo and run the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.testing.paths import FAKES


def conductor_argv() -> list[str]:
    exe = Path(sys.executable).parent / "conductor"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "conductor"]


def write_workflow(repo: Path, text: str, name: str = "wf.yaml") -> Path:
    path = repo / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def cli(
    repo: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    # the venv's python right after the fakes: a pyenv shim costs ~100 ms per fake start
    path = os.pathsep.join([str(FAKES), str(Path(sys.executable).parent), os.environ["PATH"]])
    full = {**os.environ, "PATH": path, **(env or {})}
    return subprocess.run(
        [*conductor_argv(), *args],
        cwd=repo,
        env=full,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def run_json(
    repo: Path,
    wf: str,
    *args: str,
    env: dict[str, str] | None = None,
) -> tuple[int, list[dict[str, Any]], str]:
    """Run with --json; returns (exit code, events, stderr)."""
    proc = cli(repo, "run", wf, "--json", *args, env=env)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events, proc.stderr


def db_rows(repo: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    con = sqlite3.connect(repo / ".conductor" / "state.db")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, params).fetchall()]
    finally:
        con.close()


def task_states(repo: Path) -> dict[str, str]:
    run = db_rows(repo, "SELECT id FROM runs ORDER BY started DESC LIMIT 1")[0]["id"]
    return {
        r["task_id"]: r["state"] for r in db_rows(repo, "SELECT * FROM tasks WHERE run_id = ?", run)
    }


def has_fakes() -> bool:
    return (FAKES / "claude").exists() and shutil.which("python3") is not None


def latest_run(repo: Path) -> str:
    return str(db_rows(repo, "SELECT id FROM runs ORDER BY started DESC LIMIT 1")[0]["id"])


def attempt_branch(repo: Path, task: str, n: int, integration: str = "conductor/t") -> str:
    """The attempt branch of ``task``'s attempt ``n`` in the newest run (named per run)."""
    return f"{integration}.attempts/{latest_run(repo)}/{task}/{n}"
