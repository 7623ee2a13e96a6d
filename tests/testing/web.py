"""Helpers for the web tests: real runs to look at, a real `conductor serve`, SSE parsing."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.testing.runner import cli, conductor_argv, latest_run, write_workflow

# Two groups over two waves, a validator, a failure, a log line to find: a page worth seeing.
FINISHED = """
version: 1
name: web
groups:
  build: {description: the parts}
  check: {depends_on: [build]}
tasks:
  A: {run: "echo hello from A", group: build}
  B:
    run: "echo B > b.txt"
    group: build
    validate: [{run: "test -f b.txt"}]
  C: {run: "echo C", group: check, depends_on: [A]}
  D: {run: "echo boom; exit 1", group: check, retries: 0}
"""


def slow_workflow(n: int, seconds: float, name: str = "slow") -> str:
    """``n`` tasks, each waiting for ``seconds`` and saying so, the last one after the rest."""
    lines = ["version: 1", f"name: {name}", "concurrency: 2", "tasks:"]
    for i in range(n - 1):
        lines.append(f'  T{i}: {{run: "echo working on T{i}; sleep {seconds}"}}')
    deps = ", ".join(f"T{i}" for i in range(n - 1))
    lines.append(f'  LAST: {{run: "echo last; sleep {seconds}", depends_on: [{deps}]}}')
    return "\n".join(lines) + "\n"


def finished_run(repo: Path) -> str:
    """Run FINISHED to its end (exit 1: D fails) and return the run id."""
    write_workflow(repo, FINISHED)
    proc = cli(repo, "run", "wf.yaml", "--quiet")
    assert proc.returncode == 1, proc.stderr
    return latest_run(repo)


def start_detached(repo: Path, text: str, name: str = "slow.yaml") -> str:
    write_workflow(repo, text, name)
    proc = cli(repo, "run", name, "--detach")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()[0].strip()


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str  # the printed one, token included
    lines: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.url.split("?", 1)[0]

    @property
    def token(self) -> str | None:
        m = re.search(r"[?&]token=([^&\s]+)", self.url)
        return m.group(1) if m else None

    def stop(self, timeout: float = 10) -> tuple[int, str]:
        """Ctrl-C, as a person stops it; its exit code and all it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return self.proc.returncode, "\n".join(self.lines) + "\n" + (out or "")


@contextmanager
def serving(repo: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`conductor serve --port 0 ARGS` in ``repo``; yields once it printed its URL."""
    full = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                   os.environ["PATH"]]), **(env or {})}  # fmt: skip
    proc = subprocess.Popen([*conductor_argv(), "serve", "--port", "0", *args], cwd=repo,
                            env=full, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    served = Served(proc, "")
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError("serve exited early:\n" + "\n".join(served.lines))
            served.lines.append(line.rstrip("\n"))
            m = re.search(r"(http://\S+)", line)
            if m:
                served.url = m.group(1)
                break
        assert served.url, served.lines
        yield served
    finally:
        served.stop()


def sse_messages(text: str) -> list[dict[str, Any]]:
    """The messages of an event stream: {"id", "event", "data"} each (comments dropped)."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        msg: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            msg[key] = value[1:] if value.startswith(" ") else value
        if "data" in msg or "event" in msg:
            out.append(msg)
    return out


def chromium() -> str | None:
    """Debian's chromium, where the machine has it."""
    for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip
