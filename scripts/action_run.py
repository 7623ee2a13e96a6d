#!/usr/bin/env python3
"""The run step of the GitHub Action (action.yml): run a workflow, keep its record.

    INPUT_WORKFLOW=workflows/phase.yaml INPUT_BATCH_GROUP="A B" INPUT_ARGS="-j 4" \\
        python scripts/action_run.py

Runs `conductor run` (its lines go to the job's log as they come), then, for the run it
recorded, exports the execution log (markdown) and the full record (`export --format
json`) into one directory for upload-artifact, writes the execution log to the job
summary ($GITHUB_STEP_SUMMARY) and the step's outputs ($GITHUB_OUTPUT: exit-code,
run-id, state, log, export, artifact-dir), and exits with conductor's exit code. A
workflow that does not start (exit 2) leaves no run: the summary then shows why.
Only the standard library: it runs before anything but conductor is installed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

SUMMARY_LIMIT = 1_000_000  # GitHub takes at most 1 MiB of summary per step
CONDUCTOR = os.environ.get("CONDUCTOR_BIN", "conductor")


def conductor(*args: str, capture: bool = True) -> subprocess.CompletedProcess[str]:
    # conductor's own short summary is left out: this step writes the whole log there
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    return subprocess.run([CONDUCTOR, *args], env=env, text=True, check=False,
                          capture_output=capture)  # fmt: skip


def run_args(environ: Mapping[str, str]) -> list[str]:
    """`conductor run` and its arguments, from the action's inputs."""
    workflow = environ.get("INPUT_WORKFLOW", "").strip()
    if not workflow:
        raise SystemExit("the action's `workflow` input is empty: name a workflow file")
    groups = environ.get("INPUT_BATCH_GROUP", "").replace(",", " ").split()
    args = ["run", workflow]
    for g in groups:
        args += ["--batch-group", g]
    return args + shlex.split(environ.get("INPUT_ARGS", ""))


def run_ids() -> list[str]:
    proc = conductor("runs", "--json", "--limit", "50")
    if proc.returncode != 0:
        return []  # no runs here yet
    return [r["id"] for r in json.loads(proc.stdout)["runs"]]


def export(run_id: str, out: Path) -> tuple[Path, Path, str]:
    """(execution log, record, run state) of ``run_id``, written into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    log, record = out / "EXECUTION_LOG.md", out / f"{run_id}.json"
    conductor("export", run_id, "--format", "markdown", "-o", str(log))
    conductor("export", run_id, "--format", "json", "-o", str(record))
    state = json.loads(record.read_text())["run"]["state"] if record.is_file() else "unknown"
    return log, record, str(state)


def summary_text(log: Path | None, code: int, stderr: str) -> str:
    """The execution log (cut to what GitHub takes), or why the workflow did not start."""
    if log is None or not log.is_file():
        why = stderr.strip() or "(no output)"
        return (f"### conductor: the workflow did not start (exit {code})\n\n"
                f"```text\n{why}\n```\n")  # fmt: skip
    text = log.read_text(encoding="utf-8")
    if len(text.encode()) > SUMMARY_LIMIT:
        cut = text.encode()[: SUMMARY_LIMIT - 200].decode(errors="ignore")
        text = cut.rsplit("\n## ", 1)[0] + "\n\n(cut here: the whole log is in the artifact)\n"
    return text


def append(variable: str, text: str, environ: Mapping[str, str]) -> None:
    """Append ``text`` to the file $``variable`` names (as GitHub's runner reads it)."""
    target = environ.get(variable)
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")


def outputs(values: Mapping[str, str]) -> str:
    return "".join(f"{k}={' '.join(str(v).split())}\n" for k, v in values.items())


def main(argv: Sequence[str] = ()) -> int:
    environ = os.environ
    before = set(run_ids())
    proc = subprocess.run([CONDUCTOR, *run_args(environ)], text=True, stderr=subprocess.PIPE,
                          env={k: v for k, v in environ.items() if k != "GITHUB_STEP_SUMMARY"},
                          check=False)  # fmt: skip
    sys.stderr.write(proc.stderr)
    new = [r for r in run_ids() if r not in before]
    values = {"exit-code": str(proc.returncode), "run-id": "", "state": "not started",
              "log": "", "export": "", "artifact-dir": ""}  # fmt: skip
    log = None
    if new:
        base = Path(environ.get("RUNNER_TEMP") or tempfile.gettempdir())
        out = base / f"conductor-{new[0]}"
        log, record, state = export(new[0], out)
        values.update({"run-id": new[0], "state": state, "log": str(log),
                       "export": str(record), "artifact-dir": str(out)})  # fmt: skip
    append("GITHUB_STEP_SUMMARY", summary_text(log, proc.returncode, proc.stderr), environ)
    append("GITHUB_OUTPUT", outputs(values), environ)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
