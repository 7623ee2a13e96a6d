"""`conductor progress` from inside an agent's sandbox (issue 11): found through
`$CONDUCTOR_BIN` when a login shell resets PATH (Codex runs every command with `bash -lc`),
and recorded through the attempt's spool when the state directory is read-only to the
task (Codex's workspace-write sandbox); the spool never reaches the attempt's commit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.testing.repos import git
from tests.testing.runner import db_rows, run_json, write_workflow

# what an agent's tool runs: a login shell whose profile resets PATH
LOGIN = """env -u PATH bash -lc 'command -v conductor && exit 9; \
"$CONDUCTOR_BIN" progress 60 "from a login shell"' && echo done > login.txt"""
# the state directory read-only to this task alone, its worktree writable: Codex's sandbox.
# root ignores chmod: a private mount namespace with read-only binds stands in for it there
RO_ROOT = """unshare -m --propagation private sh -c 'S=$CONDUCTOR_STATE_DIR;
mount --bind -o ro "$S" "$S" && mount --bind "$PWD" "$PWD" && mount -o remount,bind,rw "$PWD" &&
if touch "$S/probe" 2>/dev/null; then exit 9; fi &&
"$CONDUCTOR_BIN" progress 70 "from a read-only sandbox"' && echo done > ro.txt"""
RO_USER = """S=$CONDUCTOR_STATE_DIR; chmod a-w "$S" "$S/state.db";
"$CONDUCTOR_BIN" progress 70 "from a read-only sandbox"; rc=$?;
chmod u+w "$S" "$S/state.db"; [ $rc = 0 ] && echo done > ro.txt"""


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = "mount --bind -o ro / /mnt 2>/dev/null || mount --bind -o ro /tmp /tmp"
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", probe],
                          capture_output=True)  # fmt: skip
    return proc.returncode == 0


def _steps(repo: Path, task: str) -> list[tuple[float, str]]:
    rows = db_rows(repo, "SELECT * FROM events WHERE kind = 'task_progress' AND task_id = ?", task)
    return [(d["percent"], d["message"]) for d in (json.loads(r["data"]) for r in rows)]


def test_progress_from_a_login_shell_and_a_read_only_state_dir(repo: Path) -> None:
    root = os.geteuid() == 0
    if root and not _can_unshare():
        pytest.skip("root ignores chmod, and no mount namespace can be made here")
    ro = (RO_ROOT if root else RO_USER).replace("\n", " ")
    write_workflow(repo, f"""
version: 1
name: t
defaults: {{retries: 0}}
tasks:
  LOGIN:
    run: {json.dumps(LOGIN)}
  RO:
    run: {json.dumps(ro)}
""")  # fmt: skip
    code, events, err = run_json(repo, "wf.yaml")
    assert code == 0, (err, [e for e in events if e["kind"] == "task_failed"])
    assert _steps(repo, "LOGIN") == [(60, "from a login shell")]
    assert _steps(repo, "RO") == [(70, "from a read-only sandbox")]
    rows = {r["task_id"]: r for r in db_rows(repo, "SELECT * FROM tasks")}
    assert (rows["RO"]["progress"], rows["RO"]["step"]) == (70, "from a read-only sandbox")
    # the spool lives in each worktree, never in what was committed and merged
    files = git(repo, "ls-tree", "-r", "--name-only", "conductor/t").split()
    assert {"login.txt", "ro.txt"} <= set(files) and not any(".conductor" in f for f in files)


def test_progress_needs_no_state_dir_at_all_and_a_kept_worktree_keeps_no_spool(
    repo: Path,
) -> None:
    write_workflow(repo, """
version: 1
name: t
defaults: {retries: 0}
workspace: {keep: always}
tasks:
  A:
    run: 'CONDUCTOR_STATE_DIR=/nonexistent conductor progress 30 "no state dir" && touch a.txt'
""")  # fmt: skip
    code, _events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert _steps(repo, "A") == [(30, "no state dir")]
    worktree = Path(db_rows(repo, "SELECT worktree FROM attempts")[0]["worktree"])
    assert (worktree / "a.txt").exists() and not (worktree / ".conductor").exists()
