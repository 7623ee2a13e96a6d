"""The live view through a real pseudo-terminal (a tmux pane of 80x24): its final frame
lists what fits and counts the rest, and the execution log's path is not wrapped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.testing.repos import make_repo
from tests.testing.runner import conductor_argv, write_workflow

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def tmux(socket: str, *args: str) -> str:
    out = subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", *args],
                         capture_output=True, text=True, check=False)  # fmt: skip
    return out.stdout


def run_in_pane(repo: Path, argv: list[str], width: int = 80, height: int = 24) -> str:
    """Run ``argv`` in a detached tmux pane of ``width`` x ``height``; the whole screen
    and its scrollback once it exits."""
    socket, name = f"conductor-live-{os.getpid()}", uuid.uuid4().hex[:8]
    venv = str(Path(sys.executable).parent)
    env = [f"PATH={venv}{os.pathsep}{os.environ['PATH']}", "TERM=xterm-256color", "NO_COLOR=1"]
    cmd = ["env", "-u", "COLUMNS", "-u", "LINES", *env, *argv]  # the pane's own size
    tmux(socket, "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height),
         "-c", str(repo), *cmd)  # fmt: skip
    tmux(socket, "set-option", "-t", name, "remain-on-exit", "on")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if tmux(socket, "display", "-p", "-t", name, "#{pane_dead}").strip() == "1":
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the run did not finish in its pane")
        return tmux(socket, "capture-pane", "-p", "-J", "-S", "-", "-t", name)
    finally:
        tmux(socket, "kill-server")


def test_final_frame_counts_the_tasks_that_do_not_fit(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    tasks = "".join(f"  T{i:02d}: {{run: 'echo {i} > f{i}.txt'}}\n" for i in range(30))
    write_workflow(repo, "version: 1\nname: many\nconcurrency: 8\n"
                   "defaults: {agent: sh}\nagents: {sh: {preset: shell}}\ntasks:\n" + tasks)
    screen = run_in_pane(repo, [*conductor_argv(), "run", "wf.yaml"])
    assert "conductor · many" in screen, screen
    end = screen.rfind("Pane is dead")  # tmux's own note under a finished pane
    final = screen[screen.rindex("conductor · many") : end if end > 0 else None]
    lines = final.splitlines()
    assert "30/30 done" in final and "30 succeeded" in final
    shown = [ln for ln in lines if ln.lstrip().startswith("✔ succeeded")]
    more = [ln for ln in lines if "more:" in ln]
    assert more, final
    hidden = int(more[0].split("…")[1].split()[0])
    assert len(shown) + hidden == 30, final  # every task is a row or counted
    assert "succeeded" in more[0]
    log = [ln for ln in lines if ln.startswith("execution log:")]
    assert log and log[0].endswith("EXECUTION_LOG.md"), final  # one line, not wrapped
    assert [ln for ln in lines if len(ln.rstrip()) > 80] == []
