"""`conductor demo`: a sandbox repository with a sample workflow, run live.

The workflow uses shell tasks only, so it works on a fresh machine with git and no agent
CLI or API key. It shows the moving parts: three groups run in waves, a flaky task that
fails its first attempt and succeeds on the retry, a task validator, a group gate, a
hook, and a repository config file (`conductor.toml`) that shortens the retry backoff.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from conductor.errors import UserError
from conductor.git.workspace import Workspace

WORKFLOW_FILE = "demo.yaml"
BRANCH = "conductor/demo"

# The sleeps keep each task on screen long enough to watch; CONDUCTOR_DEMO_PAUSE=0 skips them.
WORKFLOW = """\
# conductor demo: six shell tasks in three groups. Try `conductor plan demo.yaml`,
# `conductor graph demo.yaml`, then `conductor run demo.yaml --force` to run it again.
version: 1
name: demo
description: Three groups of shell tasks, a flaky task that is retried, a validator and a gate
concurrency: 3
defaults: {agent: sh, timeout: 2m, idle_timeout: 1m, retries: 0}
agents:
  sh: {preset: shell}

on:
  # hooks get the event as JSON on stdin; here they just collect the events in a file
  task_retrying: [sh, -c, 'cat >> .conductor/hooks.jsonl; echo >> .conductor/hooks.jsonl']
  run_finished: [sh, -c, 'cat >> .conductor/hooks.jsonl; echo >> .conductor/hooks.jsonl']

groups:
  setup:
    description: Write the inputs
  build:
    description: Derive files from the inputs
    depends_on: [setup]
    validate:                         # the gate: runs on the integration branch
      - run: test -s build/greeting.txt && test -s build/sorted.txt
  publish:
    description: Summarise everything
    depends_on: [build]

tasks:
  config:
    title: Write the app config
    estimate: 1s
    group: setup
    run: >-
      sleep ${CONDUCTOR_DEMO_PAUSE:-1};
      mkdir -p config && printf 'name=demo\\nversion=1\\n' > config/app.conf
    outputs: [config/app.conf]
  numbers:
    title: Write the input numbers
    estimate: 1s
    group: setup
    run: >-
      sleep ${CONDUCTOR_DEMO_PAUSE:-1};
      mkdir -p data && printf '3\\n1\\n2\\n' > data/numbers.txt
    outputs: [data/numbers.txt]
  greeting:
    title: Greet from the config
    estimate: 1s
    group: build
    run: >-
      sleep ${CONDUCTOR_DEMO_PAUSE:-1}; mkdir -p build && . ./config/app.conf &&
      printf 'hello from %s v%s\\n' "$name" "$version" > build/greeting.txt
    inputs: [config/app.conf]
    validate:                         # a task validator: runs in the task's worktree
      - contains: {path: build/greeting.txt, pattern: "^hello from demo v1$"}
  sorted:
    title: Sort the numbers (flaky the first time)
    estimate: 1s
    group: build
    retries: 1
    run: >-
      marker="$CONDUCTOR_STATE_DIR/demo-flaky-$CONDUCTOR_RUN_ID";
      if [ ! -e "$marker" ]; then touch "$marker";
      echo "simulated flaky failure: the first attempt always fails" >&2; exit 1; fi;
      sleep ${CONDUCTOR_DEMO_PAUSE:-1};
      mkdir -p build && sort -n data/numbers.txt > build/sorted.txt
    outputs: [build/sorted.txt]
  report:
    title: Write the summary report
    estimate: 1s
    group: publish
    run: >-
      conductor progress 50 "writing the summary" 2>/dev/null || true;
      sleep ${CONDUCTOR_DEMO_PAUSE:-1}; mkdir -p report &&
      { echo '# Demo report'; cat build/greeting.txt; echo numbers:; cat build/sorted.txt; }
      > report/summary.txt
    outputs: [report/summary.txt]
  index:
    title: List what the demo produced
    estimate: 1s
    group: publish
    run: >-
      sleep ${CONDUCTOR_DEMO_PAUSE:-1};
      mkdir -p report && ls config data build > report/index.txt
    outputs: [report/index.txt]
"""

CONFIG = """\
# conductor reads defaults from here (or [tool.conductor] in pyproject.toml);
# `conductor config demo.yaml` shows every value and where it came from.
retry_backoff = 0.5   # seconds before the flaky task's retry (built-in: 2)
"""

README = """\
# conductor demo

A sandbox made by `conductor demo`. The workflow is `demo.yaml`; every task runs in its
own git worktree and its result is merged into the `conductor/demo` branch.
"""


@dataclass(frozen=True)
class DemoResult:
    root: Path
    state: str
    exit_code: int
    log_path: Path | None
    branch: str = BRANCH


def create_demo(target: Path | None) -> Path:
    """A new git repository holding the demo files, committed on branch main."""
    if target is None:
        root = Path(tempfile.mkdtemp(prefix="conductor-demo-"))
    else:
        root = target.expanduser().absolute()
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise UserError(
                f"{root} already exists and is not an empty directory",
                hint="give a new directory, or leave DIR out to use a fresh temporary one",
            )
        root.mkdir(parents=True, exist_ok=True)
    ws = Workspace.init(root, "main")
    (root / WORKFLOW_FILE).write_text(WORKFLOW, encoding="utf-8")
    (root / "conductor.toml").write_text(CONFIG, encoding="utf-8")
    (root / "README.md").write_text(README, encoding="utf-8")
    # commit_all works on a machine without a git identity too (conductor's fallback)
    ws.commit_all(root, "conductor demo", "", {})
    return root


def _task_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The run's environment, with this conductor's own directory on PATH so tasks can
    call `conductor progress` even when the virtualenv is not activated."""
    env = dict(environ)
    here = Path(sys.executable).parent
    if (here / "conductor").exists():
        env["PATH"] = os.pathsep.join([str(here), env.get("PATH", os.defpath)])
    return env


def run_demo(root: Path, environ: Mapping[str, str], *, as_json: bool = False) -> DemoResult:
    """Run the demo workflow in ``root`` through the same path `conductor run` takes."""
    from conductor.console.sinks import display
    from conductor.plan.planner import make_plan
    from conductor.report import log as report
    from conductor.run.start import RunOptions, drive, prepare
    from conductor.spec import config
    from conductor.spec.load import load_workflow

    wf = load_workflow(root / WORKFLOW_FILE)
    cfg = config.effective(config.load_config(root, environ), config.workflow_values(wf), {})
    plan = make_plan(wf)
    env = _task_environ(environ)
    prep = prepare(wf, plan, RunOptions(selection={}), env)
    try:
        shown = display(
            plan, as_json=as_json, color=cfg.color, emoji=cfg.emoji, verbosity=cfg.verbosity
        )
        with shown as sink:
            state, code = drive(prep.ws, prep.store, prep.run_id, [sink], env, wf, plan,
                                settings=config.run_settings(cfg))  # fmt: skip
        log = report.log_path(prep.ws, wf, prep.run_id)
    finally:
        prep.store.close()
    return DemoResult(root, state, code, log if log.exists() else None)


def summary(result: DemoResult) -> str:
    """What to look at next."""
    root = result.root
    lines = [
        "",
        f"demo {result.state}",
        f"  repository:         {root}",
        f"  execution log:      {result.log_path or '(not written)'}",
        f"  integration branch: {result.branch}",
        "",
        "next:",
        f"  git -C {root} log --oneline --graph {result.branch}",
        f"  cd {root} && conductor status",
    ]
    return "\n".join(lines)


def main(target: Path | None, out: TextIO, environ: Mapping[str, str]) -> int:
    """`conductor demo [DIR]`: create, run, summarise; returns the run's exit code."""
    root = create_demo(target)
    print(f"demo repository: {root}", file=out, flush=True)
    result = run_demo(root, environ)
    print(summary(result), file=out, flush=True)
    return result.exit_code
