"""Fan-out at run time: `max_parallel`, branch-safe names of expansions in a real run, and
up-to-date checks that re-run only the expansions whose matrix value changed."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

from conductor.exec.base import Request
from conductor.exec.fake import Reply
from conductor.spec.load import load_workflow
from conductor.spec.model import Workflow
from tests.testing.engine import run_workflow, task_of
from tests.testing.repos import attempt_worktrees, git
from tests.testing.runner import cli, db_rows, run_json, task_states, write_workflow

FAKE = """
version: 1
name: t
concurrency: {concurrency}
agents: {{fake: {{command: [fake-agent, "{{task_id}}", "{{prompt_file}}"]}}}}
defaults: {{agent: fake, retries: 0}}
tasks:
  T:
    matrix: {{m: [a, b, c, d, e]}}
    max_parallel: 2
    prompt: "work on {{{{ matrix.m }}}}"
  X: {{prompt: "unrelated"}}
  after: {{prompt: "sum up", depends_on: [T]}}
"""


def fake_workflow(repo: Path, concurrency: int = 4) -> Workflow:
    return load_workflow(write_workflow(repo, FAKE.format(concurrency=concurrency)))


class Peaks:
    """A handler that holds each agent a moment and records how many ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.prompts: dict[str, str] = {}

    def __call__(self, request: Request) -> Reply:
        tid = task_of(request)
        if tid is None:
            return Reply()
        key = tid.split("[")[0]
        with self.lock:
            self.now[key] = self.now.get(key, 0) + 1
            self.now["*"] = self.now.get("*", 0) + 1
            for k in (key, "*"):
                self.peak[k] = max(self.peak.get(k, 0), self.now[k])
            self.prompts[tid] = Path(request.argv[2]).read_text()
        time.sleep(0.15)
        with self.lock:
            self.now[key] -= 1
            self.now["*"] -= 1
        return Reply(files={f"{tid}.txt": "done\n"})


def test_max_parallel_caps_one_matrix_and_leaves_the_rest_of_the_slots_to_others(
    repo: Path,
) -> None:
    peaks = Peaks()
    r = run_workflow(fake_workflow(repo), peaks)
    assert r.state == "succeeded", r.states()
    assert peaks.peak["T"] == 2  # five expansions, never more than two at once
    assert peaks.peak["*"] == 3  # X took a third slot meanwhile
    queued = [e["data"]["reason"] for e in r.events_of("task_queued")]
    assert "max_parallel: 2 of T already running" in queued
    assert "work on c" in peaks.prompts["T[m=c]"]  # the prompt was filled in per expansion
    # the dependent started only after every expansion had merged
    order = [e["task_id"] for e in r.events_of("merged")]
    assert order.index("after") > max(order.index(f"T[m={v}]") for v in "abcde")


def run_shell(repo: Path, values: str) -> tuple[int, str]:
    write_workflow(repo, f"""
        version: 1
        name: t
        tasks:
          T:
            title: "module {{{{ matrix.module }}}}"
            matrix: {{module: [{values}], py: ["3.12"]}}
            run: "mkdir -p out && echo '{{{{ matrix.module }}}}' > 'out/{{{{ matrix.module }}}}.txt'"
            outputs: ["out/{{{{ matrix.module }}}}.txt"]
          report: {{run: "ls out > modules.txt", depends_on: [T]}}
    """)  # fmt: skip
    code, _events, err = run_json(repo, "wf.yaml")
    return code, err


def test_a_real_run_over_three_values_merges_all_three_under_safe_names(repo: Path) -> None:
    code, err = run_shell(repo, '"auth", "billing", "a b"')
    assert code == 0, err
    ids = ["T[module=auth,py=3.12]", "T[module=billing,py=3.12]", "T[module=a b,py=3.12]"]
    assert task_states(repo) == {**dict.fromkeys(ids, "succeeded"), "report": "succeeded"}
    listed = git(repo, "show", "conductor/t:modules.txt").split("\n")
    assert listed == ["a b.txt", "auth.txt", "billing.txt"]  # all three, then the report
    branches = [r["branch"] for r in db_rows(repo, "SELECT branch FROM attempts")]
    assert any(b.endswith("/T-module-auth-py-3.12/1") for b in branches)
    assert all("[" not in b and " " not in b for b in branches)
    logs = {p.name for p in (repo / ".conductor" / "runs").glob("*/logs/*.log")}
    assert "T-module-auth-py-3.12-1.log" in logs and len(logs) == 4
    # the execution log lists the expansions under their task
    log = next((repo / ".conductor" / "runs").glob("*/EXECUTION_LOG.md")).read_text()
    assert "| **T** | matrix: 3 tasks: 3 succeeded |" in log
    assert "| ↳ **T[module=a b,py=3.12]** | module a b |" in log
    assert 'subgraph T ["T (matrix: 3 tasks)"]' in log


@pytest.mark.slow  # three end-to-end runs
def test_a_changed_matrix_value_reruns_only_its_expansion(repo: Path) -> None:
    assert run_shell(repo, "auth, billing, search")[0] == 0
    code, err = run_shell(repo, "auth, billing, payments")
    assert code == 0, err
    run = db_rows(repo, "SELECT id FROM runs ORDER BY started DESC LIMIT 1")[0]["id"]
    ran = {
        r["task_id"] for r in db_rows(repo, "SELECT task_id FROM attempts WHERE run_id = ?", run)
    }
    assert ran == {"T[module=payments,py=3.12]", "report"}  # report: its inputs changed
    states = task_states(repo)
    assert states["T[module=auth,py=3.12]"] == states["T[module=billing,py=3.12]"] == "skipped"
    # nothing changed: nothing runs
    proc = cli(repo, "plan", "wf.yaml")
    assert proc.stdout.count("up to date") == 4, proc.stdout


@pytest.mark.slow  # a killed run and its resume
@pytest.mark.parametrize("step", ["agent:2", "merged:2"])
def test_a_killed_fan_out_run_resumes_and_merges_each_expansion_once(repo: Path, step: str) -> None:
    write_workflow(repo, """
        version: 1
        name: t
        concurrency: 2
        tasks:
          T:
            for_each: [auth, "a b", "x,y", billing]
            run: "echo '{{ matrix.item }}' > 'f-{{ matrix.item }}.txt'"
    """)  # fmt: skip
    proc = cli(repo, "run", "wf.yaml", env={"CONDUCTOR_CRASH_AT": step})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = db_rows(repo, "SELECT id FROM runs")[0]["id"]
    proc = cli(repo, "resume", run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for value in ("auth", "a b", "x,y", "billing"):
        merges = git(repo, "log", "conductor/t", "--merges", "--format=%H", "--fixed-strings",
                     "--grep", f"Conductor-Task: T[{value}]")  # fmt: skip
        assert len(merges.split()) == 1, value
        assert git(repo, "show", f"conductor/t:f-{value}.txt") == value
    assert attempt_worktrees(repo) == []
    assert git(repo, "for-each-ref", "refs/conductor") == ""
