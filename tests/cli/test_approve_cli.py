"""Approval before merge from the command line: a detached run, decisions from another
process (`approve`, `reject`), `diff`, `status`, hooks, a runner killed while a task waits,
`--auto-approve`, and every refusal (exit 2, one clear message, nothing changed)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.testing.repos import attempt_worktrees, git
from tests.testing.runner import cli, db_rows, latest_run, task_states, write_workflow

# A prints an escape sequence into a file: `diff` on a terminal must show it inert. Every
# run of an agent leaves a line in ran-<task> (outside the worktree), to count them.
WF = r"""
version: 1
name: t
on:
  task_awaiting_approval: [sh, -c, "cat > hook-{task}.json"]
tasks:
  A:
    run: |
      echo run >> "$CONDUCTOR_STATE_DIR/ran-A"
      cp "$CONDUCTOR_INSTRUCTIONS" "$CONDUCTOR_STATE_DIR/instructions-A-$CONDUCTOR_ATTEMPT.md"
      echo "a $CONDUCTOR_ATTEMPT" > a.txt
      printf 'title\033]0;pwned\007\n' > evil.txt
    approve: true
  B: {run: "echo b > b.txt", depends_on: [A]}
  C: {run: "echo c > c.txt"}
"""


def wait_for(what: str, test: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not test():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def run_over(repo: Path, run: str) -> bool:
    return db_rows(repo, "SELECT state FROM runs WHERE id = ?", run)[0]["state"] != "running"


def merges(repo: Path, task: str) -> int:
    out = git(repo, "log", "conductor/t", "--merges", "--format=%H",
              "--grep", f"^Conductor-Task: {task}$")  # fmt: skip
    return len(out.split())


def agent_runs(repo: Path, task: str) -> int:
    ran = repo / ".conductor" / f"ran-{task}"
    return len(ran.read_text().splitlines()) if ran.exists() else 0


def test_a_detached_run_waits_for_an_approve_from_another_terminal(repo: Path) -> None:
    write_workflow(repo, WF)
    proc = cli(repo, "run", "wf.yaml", "--detach")
    assert proc.returncode == 0, proc.stderr
    run = proc.stdout.splitlines()[0]
    wait_for("A to await approval", lambda: task_states(repo).get("A") == "awaiting_approval")
    wait_for("C to finish", lambda: task_states(repo).get("C") == "succeeded")

    # status says the run waits for a person, in text and JSON; B waits for A
    status = cli(repo, "status", run)
    assert "running" in status.stdout.splitlines()[0]
    assert f"awaiting approval: A (`conductor diff {run} A`" in status.stdout
    doc = json.loads(cli(repo, "status", run, "--json").stdout)
    assert doc["run"]["state"] == "running" and doc["run"]["awaiting_approval"] == ["A"]
    states = {t["id"]: t["state"] for t in doc["tasks"]}
    assert states == {"A": "awaiting_approval", "B": "pending", "C": "succeeded"}

    # the hook heard it, with the event on stdin
    hook_file = repo / "hook-A.json"
    wait_for("the hook", lambda: hook_file.exists() and hook_file.read_text().endswith("}"))
    hook = json.loads(hook_file.read_text())
    assert hook["event"] == "task_awaiting_approval" and hook["state"] == "awaiting_approval"

    # the execution log, rewritten as A came to wait, says so and how to decide
    log_file = repo / ".conductor" / "runs" / run / "EXECUTION_LOG.md"
    wait_for(
        "the log", lambda: log_file.exists() and "## Awaiting approval" in log_file.read_text()
    )
    assert f"`conductor approve {run} A`" in log_file.read_text()

    # diff: what A would merge, as git shows it against the integration head
    post = db_rows(repo, "SELECT post_commit FROM attempts WHERE task_id = 'A'")[0]["post_commit"]
    plain = cli(repo, "diff", run, "A")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == git(repo, "diff", f"conductor/t...{post}") + "\n"
    assert "+a 1" in plain.stdout and "c.txt" not in plain.stdout  # not what others merged
    assert "\x1b]0;pwned" in plain.stdout  # a pipe gets the patch untouched (git apply)
    assert "A attempt 1 (awaiting_approval)" in plain.stderr
    coloured = cli(repo, "diff", run, "A", "--color", "always").stdout
    assert "\x1b[32m+a 1\x1b[m" in coloured and "\x1b[1mdiff --git a/a.txt b/a.txt" in coloured
    assert "\x1b]0;" not in coloured and "\\x1b]0;pwned\\x07" in coloured  # shown inert

    # refusals leave everything as it was
    for args, message in [
        (("approve", run, "B"), "task B is not awaiting approval (it is pending)"),
        (("approve", run, "Z"), f"run {run} has no task or group `Z`"),
        (("approve", run, "a"), "did you mean `A`?"),
        (("reject", run, "C", "-m", "no"), "task C is not awaiting approval (it is succeeded)"),
        (("approve", "nosuchrun", "A"), "no run `nosuchrun`"),
        (("diff", run, "B"), "task B has no committed attempt yet (it is pending)"),
        (("diff", run, "A", "--attempt", "7"), "task A has no committed attempt 7"),
        (("diff", run, "A", "--color", "sometimes"), "unknown --color `sometimes`"),
    ]:
        bad = cli(repo, *args)
        assert bad.returncode == 2, (args, bad.stdout, bad.stderr)
        assert message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert task_states(repo)["A"] == "awaiting_approval"

    ok = cli(repo, "approve", run, "A")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "approved A: merges now"
    again = cli(repo, "approve", run, "A")  # a second reviewer is told, not obeyed twice
    assert again.returncode == 2, again.stdout
    # the runner may have merged everything and ended the run by now
    assert "not awaiting approval" in again.stderr or "already ended" in again.stderr
    wait_for("the run to end", lambda: run_over(repo, run))
    assert task_states(repo) == {"A": "succeeded", "B": "succeeded", "C": "succeeded"}
    assert merges(repo, "A") == 1 and agent_runs(repo, "A") == 1
    assert git(repo, "show", "conductor/t:b.txt") == "b"
    merged = cli(repo, "diff", run, "A")
    assert "merged as" in merged.stderr and "+a 1" in merged.stdout
    log = (repo / ".conductor" / "runs" / run / "runner.log").read_text()
    assert "A: AWAITING APPROVAL" in log and "A: approved by" in log


def test_a_runner_killed_while_a_task_waits_resumes_it_waiting(repo: Path) -> None:
    write_workflow(repo, WF)
    proc = cli(repo, "run", "wf.yaml", env={"CONDUCTOR_CRASH_AT": "awaiting"})
    assert proc.returncode == -signal.SIGKILL
    run = latest_run(repo)
    status = cli(repo, "status", run).stdout
    assert "interrupted" in status and "awaiting approval: A" in status
    assert task_states(repo)["A"] == "awaiting_approval"

    ok = cli(repo, "approve", run, "A")  # no runner: recorded, acted on at resume
    assert ok.returncode == 0, ok.stderr
    assert f"when the run resumes: `conductor resume {run}`" in ok.stdout
    assert task_states(repo)["A"] == "approved"

    resumed = cli(repo, "resume", run)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert task_states(repo) == {"A": "succeeded", "B": "succeeded", "C": "succeeded"}
    assert agent_runs(repo, "A") == 1  # the held commit was merged, the agent not rerun
    assert merges(repo, "A") == 1
    assert git(repo, "show", "conductor/t:a.txt") == "a 1"
    assert attempt_worktrees(repo) == []


def test_auto_approve_lets_ci_skip_the_wait(repo: Path) -> None:
    write_workflow(repo, WF)
    proc = cli(repo, "run", "wf.yaml", "--auto-approve")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "A: approved (--auto-approve)" in proc.stdout
    assert "AWAITING" not in proc.stdout and not (repo / "hook-A.json").exists()
    assert merges(repo, "A") == 1


@pytest.mark.slow
def test_resume_with_auto_approve_merges_what_waits(repo: Path) -> None:
    write_workflow(repo, WF)
    cli(repo, "run", "wf.yaml", env={"CONDUCTOR_CRASH_AT": "awaiting"})
    run = latest_run(repo)
    resumed = cli(repo, "resume", run, "--auto-approve")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert task_states(repo)["A"] == "succeeded"
    assert agent_runs(repo, "A") == 1 and merges(repo, "A") == 1


@pytest.mark.slow
def test_reject_from_another_terminal_retries_with_the_message_or_fails(repo: Path) -> None:
    write_workflow(repo, WF)
    run = cli(repo, "run", "wf.yaml", "--detach").stdout.splitlines()[0]
    wait_for("A to await approval", lambda: task_states(repo).get("A") == "awaiting_approval")
    rejected = cli(repo, "reject", run, "A", "--message", "Say `a 2`, please")
    assert rejected.returncode == 0, rejected.stderr
    assert rejected.stdout.strip() == "rejected A: retried with your message now"
    second = repo / ".conductor" / "instructions-A-2.md"
    wait_for("A's second attempt to wait", lambda: second.exists() and task_states(repo).get("A")
             == "awaiting_approval")  # fmt: skip
    assert "## Reviewer feedback" in second.read_text()
    assert "Say `a 2`, please" in second.read_text()
    assert cli(repo, "diff", run, "A").stdout.count("+a 2") == 1
    # without a message the task fails, and its dependents with it
    assert cli(repo, "reject", run, "A").stdout.strip() == "rejected A: fails (no retry) now"
    wait_for("the run to end", lambda: run_over(repo, run))
    assert task_states(repo) == {"A": "failed", "B": "blocked", "C": "succeeded"}
    assert merges(repo, "A") == 0 and agent_runs(repo, "A") == 2
    assert cli(repo, "approve", run, "A").stderr.startswith(f"error: run {run} already ended")
