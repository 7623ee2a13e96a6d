"""Outputs between tasks: what a task writes to $CONDUCTOR_OUTPUT reaches the tasks after
it (their prompt, command, env, title and instructions), the store, status and the log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conductor.exec.base import Request
from conductor.exec.fake import Handler, Reply
from conductor.report.status import status_doc
from conductor.run.outputs import produced
from tests.testing.engine import EngineResult, run_workflow, start, task, task_of, workflow
from tests.testing.repos import git
from tests.testing.runner import cli, conductor_argv, latest_run, task_states, write_workflow

SUMMARY = "line one\nline two: `code`\n\nline four"


def writing(values: dict[str, str], fail: frozenset[str] = frozenset()) -> Handler:
    """A handler whose agents append ``values[task]`` (raw file text) to $CONDUCTOR_OUTPUT,
    write a file and exit 0 (1 for tasks in ``fail``)."""

    def handler(request: Request) -> Reply:
        tid = task_of(request)
        if tid is None:
            return Reply()
        with open(request.env["CONDUCTOR_OUTPUT"], "a", encoding="utf-8") as fh:
            fh.write(values.get(tid, ""))
        return Reply(exit_code=1 if tid in fail else 0, files={f"{tid}.txt": tid})

    return handler


def instructions(r: EngineResult, task_id: str) -> str:
    return Path(r.agent_runs(task_id)[-1].argv[2]).read_text()


def test_a_multi_line_value_reaches_the_dependent_prompt_env_title_and_status(repo: Path) -> None:
    a = task("A", output_keys=("api", "summary"))
    b = task("B", after=["A"], title="use {{ tasks.A.outputs.api }}",
             prompt="Call {{ tasks.A.outputs.api }}.\nNotes:\n{{ tasks.A.outputs.summary }}",
             env={"API": "{{ tasks.A.outputs.api }}", "STATE": "{{ tasks.A.state }}"})  # fmt: skip
    c = task("C", after=["B"], prompt="{{ tasks.A.outputs.api }} again")  # transitively upstream
    handler = writing({"A": f"api=users-v2\nsummary<<EOF\n{SUMMARY}\nEOF\n"})
    with start(workflow(repo, a, b, c), handler) as h:
        r = h.drive()
        row = h.store.run(h.run_id)
        assert row is not None
        doc = status_doc(h.store, row)
    assert r.state == "succeeded", r.tasks
    text = instructions(r, "B")
    assert "# Task B: use users-v2" in text
    assert f"Call users-v2.\nNotes:\n{SUMMARY}" in text
    assert "`tasks.A.outputs.summary`" in text  # listed among the values upstream produced
    env = r.agent_runs("B")[0].env
    assert env["API"] == "users-v2" and env["STATE"] == "succeeded"
    assert "users-v2 again" in instructions(r, "C")
    stored = json.loads(r.attempts["A"][0]["outputs"])
    assert stored == {"api": "users-v2", "summary": SUMMARY}
    by_id = {t["id"]: t for t in doc["tasks"]}
    assert by_id["A"]["outputs"] == stored and by_id["B"]["outputs"] == {}
    # the file lived outside the worktree and is gone; nothing of it was committed
    # read and removed: the raw values stay on disk only while the attempt runs
    assert list(r.repo.glob(".conductor/worktrees/*/*/.conductor/output")) == []
    assert "CONDUCTOR_OUTPUT" not in r.show(r.head or "", "A.txt")


def test_a_missing_key_fails_the_reader_naming_both_tasks_and_is_not_retried(repo: Path) -> None:
    a = task("A")
    b = task("B", after=["A"], retries=2, prompt="use {{ tasks.A.outputs.api }}")
    r = run_workflow(workflow(repo, a, b), writing({"A": "port=1\n"}))
    assert r.states() == {"A": "succeeded", "B": "failed"}
    assert len(r.attempts["B"]) == 1  # the next attempt would find the same: not retried
    error = r.tasks["B"]["error"]
    assert "task B reads output `api` of task A" in error and "it wrote: `port`" in error
    assert r.agent_runs("B") == []  # the agent never started


def test_a_declared_key_not_written_fails_the_writer(repo: Path) -> None:
    a = task("A", output_keys=("api", "port"), retries=1)
    r = run_workflow(workflow(repo, a, task("B", after=["A"])), writing({"A": "port=1\n"}))
    assert r.states() == {"A": "failed", "B": "blocked"}
    assert len(r.attempts["A"]) == 2  # the agent may do better next time: retried
    assert "declared output `api` not written to $CONDUCTOR_OUTPUT" in r.tasks["A"]["error"]


def test_a_malformed_output_file_fails_the_task_clearly(repo: Path) -> None:
    r = run_workflow(workflow(repo, task("A")), writing({"A": "ok=1\nsummary<<EOF\nno end\n"}))
    assert r.states() == {"A": "failed"}
    assert "$CONDUCTOR_OUTPUT line 2: `summary<<EOF`: no line `EOF`" in r.tasks["A"]["error"]


def test_outputs_of_an_up_to_date_task_come_from_the_run_that_made_it(repo: Path) -> None:
    a = task("A")
    first = run_workflow(
        workflow(repo, a, task("B", after=["A"])), writing({"A": "api=from-run-1\n"})
    )
    assert first.state == "succeeded"
    # B changed, A did not: A is skipped as up to date, B runs on A's recorded value
    b2 = task("B", after=["A"], prompt="now use {{ tasks.A.outputs.api }}")
    second = run_workflow(workflow(repo, a, b2), writing({"A": "api=never-run\n"}))
    assert second.states() == {"A": "skipped", "B": "succeeded"}
    assert second.agent_runs("A") == []
    assert "now use from-run-1" in instructions(second, "B")


def test_produced_reads_the_state_and_outputs_a_dependent_sees(repo: Path) -> None:
    wf = workflow(repo, task("A"), task("B", after=["A"]))
    with start(wf, writing({"A": "k=v\n"}, fail=frozenset({"B"}))) as h:
        h.drive()
        assert produced(h.ctx, "A").state == "succeeded"
        assert produced(h.ctx, "A").outputs == {"k": "v"}
        assert produced(h.ctx, "B").state == "failed"


# ---------------------------------------------------------------- end to end, shell tasks

OUT_SECRET = "output-secret-3f9a1c7e"

SECRET_WORKFLOW = """
version: 1
name: t
tasks:
  A:
    output_keys: [token, notes, plain]
    run: |
      echo "token=$TOK" >> "$CONDUCTOR_OUTPUT"
      { echo "notes<<EOF"; echo "uses $TOK"; echo "second"; echo "EOF"; } >> "$CONDUCTOR_OUTPUT"
      echo "plain=hello" >> "$CONDUCTOR_OUTPUT"
    env: {TOK: "${OUT_SECRET}"}
  B:
    depends_on: [A]
    run: 'printf "%s|%s" "{{ tasks.A.outputs.token }}" "{{ tasks.A.outputs.plain }}" > b.txt'
"""


def test_a_secret_in_an_output_is_masked_everywhere(repo: Path) -> None:
    write_workflow(repo, SECRET_WORKFLOW)
    proc = cli(repo, "run", "wf.yaml", "--verbose", env={"OUT_SECRET": OUT_SECRET})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert git(repo, "show", "conductor/t:b.txt") == "***|hello"  # dependents get it masked
    status = json.loads(cli(repo, "status", "--json").stdout)
    outputs = {t["id"]: t["outputs"] for t in status["tasks"]}
    assert outputs["A"] == {"token": "***", "notes": "uses ***\nsecond", "plain": "hello"}
    export = cli(repo, "export", latest_run(repo), "--format", "json")
    attempts = json.loads(export.stdout)["attempts"]
    assert {a["task_id"]: a["outputs"] for a in attempts}["A"] == outputs["A"]
    log = next((repo / ".conductor").rglob("EXECUTION_LOG.md")).read_text()
    assert "## Outputs" in log and "| **A** | `plain` | hello |" in log
    places = {str(f): f.read_bytes() for f in (repo / ".conductor").rglob("*") if f.is_file()}
    places["export"] = export.stdout.encode()
    places["git"] = git(repo, "log", "--all", "-p", "--format=%B").encode()
    places["terminal"] = (proc.stdout + proc.stderr).encode()
    assert [where for where, data in places.items() if OUT_SECRET.encode() in data] == []


def test_outputs_survive_a_killed_runner_and_resume(repo: Path, tmp_path: Path) -> None:
    flag = tmp_path / "slow-once"
    write_workflow(
        repo,
        f"""
        version: 1
        name: t
        tasks:
          A: {{run: 'printf "v<<EOF\\nmulti\\nline\\nEOF\\n" >> "$CONDUCTOR_OUTPUT"'}}
          B:
            depends_on: [A]
            run: 'if [ ! -e {flag} ]; then touch {flag}; sleep 60; fi; printf "%s" "{{{{ tasks.A.outputs.v }}}}" > b.txt'
        """,
    )
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    runner = subprocess.Popen([*conductor_argv(), "run", "wf.yaml"], cwd=repo, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists(), "B never started"
    finally:
        runner.kill()
        runner.wait()
    proc = cli(repo, "resume", latest_run(repo))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert task_states(repo) == {"A": "succeeded", "B": "succeeded"}
    assert git(repo, "show", "conductor/t:b.txt") == "multi\nline"
