"""`conductor run` end to end: real git, real processes, the installed CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.testing.paths import ROOT
from tests.testing.repos import git, write
from tests.testing.runner import (
    attempt_branch,
    cli,
    conductor_argv,
    db_rows,
    run_json,
    task_states,
    write_workflow,
)


def merges(repo: Path, task: str, branch: str = "conductor/t") -> int:
    out = git(repo, "log", branch, "--format=%H", "--grep", f"Conductor-Task: {task}", "--merges")
    return len(out.split())


def show(repo: Path, branch: str, path: str) -> str:
    return git(repo, "show", f"{branch}:{path}")


def test_demo_workflow_end_to_end(repo: Path) -> None:
    wf = repo / "demo.yaml"
    wf.write_text((ROOT / "workflows" / "demo.yaml").read_text())
    proc = cli(repo, "run", "demo.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    states = task_states(repo)
    assert states and set(states.values()) == {"succeeded"}
    log = next((repo / ".conductor" / "runs").glob("*/EXECUTION_LOG.md")).read_text()
    for tid in states:
        assert tid in log
        assert merges(repo, tid, "conductor/demo") == 1
    assert "run succeeded" in proc.stdout


PIPELINE = """
version: 1
name: t
strategy: {strategy}
concurrency: 2
tasks:
  A: {{run: "echo a > a.txt", outputs: [a.txt]}}
  B: {{run: "cat a.txt > b.txt", depends_on: [A]}}
  C: {{run: "echo c > c.txt"}}
  D: {{run: "cat b.txt c.txt > d.txt", depends_on: [B, C]}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["waves", "eager"])
def test_strategies_run_dependents_on_merged_results(repo: Path, strategy: str) -> None:
    write_workflow(repo, PIPELINE.format(strategy=strategy))
    code, events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert show(repo, "conductor/t", "d.txt") == "a\nc"
    started = [e["task"] for e in events if e["kind"] == "task_started"]
    assert started.index("D") > started.index("B") > started.index("A")
    assert all(merges(repo, t) == 1 for t in "ABCD")


@pytest.mark.slow
def test_waves_wait_for_the_whole_previous_wave(repo: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    write_workflow(
        repo,
        f"""
        version: 1
        name: t
        concurrency: 4
        tasks:
          SLOW: {{run: "sleep 0.6; echo slow >> {trace}"}}
          FAST: {{run: "echo fast >> {trace}"}}
          NEXT: {{run: "echo next >> {trace}", depends_on: [FAST]}}
    """,
    )
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert trace.read_text().split() == ["fast", "slow", "next"]
    trace.unlink()
    code, _, err = run_json(repo, "wf.yaml", "--strategy", "eager", "--force")
    assert code == 0, err
    assert trace.read_text().split() == ["fast", "next", "slow"]


@pytest.mark.slow
def test_concurrency_is_never_exceeded(repo: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    body = (
        f'echo "start $(date +%s.%N)" >> {trace}; sleep 0.3; echo "end $(date +%s.%N)" >> {trace}'
    )
    tasks = "\n".join(f"  T{i}: {{run: '{body}'}}" for i in range(8))
    write_workflow(repo, f"version: 1\nname: t\nconcurrency: 3\ntasks:\n{tasks}\n")
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    events = sorted(
        (float(t), 1 if kind == "start" else -1)
        for kind, t in (ln.split() for ln in trace.read_text().splitlines())
    )
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 3


@pytest.mark.slow
def test_priority_orders_ready_tasks(repo: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    write_workflow(
        repo,
        f"""
        version: 1
        name: t
        concurrency: 1
        tasks:
          LOW: {{run: "echo LOW >> {trace}", priority: low}}
          MID: {{run: "echo MID >> {trace}"}}
          HIGH: {{run: "echo HIGH >> {trace}", priority: high}}
    """,
    )
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert trace.read_text().split() == ["HIGH", "MID", "LOW"]


@pytest.mark.slow
def test_overlapping_touches_never_run_at_once(repo: Path, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    step = f'echo "$CONDUCTOR_TASK_ID in" >> {trace}; sleep 0.3; echo "$CONDUCTOR_TASK_ID out" >> {trace}'
    write_workflow(
        repo,
        f"""
        version: 1
        name: t
        concurrency: 4
        tasks:
          A: {{run: 'mkdir -p db && echo a > db/a.sql; {step}', touches: ["db/**"]}}
          B: {{run: 'mkdir -p db && echo b > db/b.sql; {step}', touches: ["db/b.sql"]}}
    """,
    )
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    lines = trace.read_text().split("\n")
    assert lines[0].split()[0] == lines[1].split()[0]  # one finished before the other began


@pytest.mark.slow
def test_failure_blocks_dependents_not_siblings(repo: Path) -> None:
    write_workflow(
        repo,
        """
        version: 1
        name: t
        defaults: {retries: 0}
        tasks:
          BAD: {run: "echo partial > partial.txt; exit 3"}
          DOWN: {run: "true", depends_on: [BAD]}
          DOWN2: {run: "true", depends_on: [DOWN]}
          SIB: {run: "echo ok > sib.txt"}
    """,
    )
    code, events, _ = run_json(repo, "wf.yaml")
    assert code == 1
    assert task_states(repo) == {
        "BAD": "failed",
        "DOWN": "blocked",
        "DOWN2": "blocked",
        "SIB": "succeeded",
    }
    failed = [e for e in events if e["kind"] == "task_failed"]
    assert "exited 3" in failed[0]["data"]["error"]
    # the failed attempt's work is committed on its branch, not lost
    assert show(repo, attempt_branch(repo, "BAD", 1), "partial.txt") == "partial"
    msg = git(repo, "log", "-1", "--format=%B", attempt_branch(repo, "BAD", 1))
    assert "Conductor-Status: exit 3" in msg and "Conductor-Task: BAD" in msg


@pytest.mark.slow
def test_flaky_task_succeeds_on_retry_with_the_failure_in_its_instructions(
    repo: Path, tmp_path: Path
) -> None:
    flag, saved = tmp_path / "flag", tmp_path / "instructions"
    write_workflow(
        repo,
        f"""
        version: 1
        name: t
        tasks:
          FLAKY:
            run: 'if [ -f {flag} ]; then cp "$CONDUCTOR_INSTRUCTIONS" {saved}; echo ok > f.txt;
                  else touch {flag}; echo "boom: database locked"; exit 1; fi'
            retries: 2
    """,
    )
    code, events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert [e["kind"] for e in events if e["task"] == "FLAKY"].count("task_started") == 2
    assert "boom: database locked" in saved.read_text()
    assert db_rows(repo, "SELECT attempts FROM tasks")[0]["attempts"] == 2


def test_validator_failure_fails_the_task_with_its_output(repo: Path) -> None:
    write_workflow(
        repo,
        """
        version: 1
        name: t
        defaults: {retries: 0}
        tasks:
          V:
            run: "echo hello > out.txt"
            outputs: [out.txt, missing.txt]
            validate:
              - contains: {path: out.txt, pattern: "^goodbye"}
              - run: "echo checking; exit 4"
    """,
    )
    code, events, _ = run_json(repo, "wf.yaml")
    assert code == 1
    failed = next(e for e in events if e["kind"] == "task_failed")
    assert "validation failed" in failed["data"]["error"]
    assert "missing.txt" in failed["data"]["output"]
    assert "checking" in failed["data"]["output"]
    assert merges(repo, "V") == 0


@pytest.mark.slow
def test_group_gate_failure_blocks_dependent_groups(repo: Path) -> None:
    write_workflow(
        repo,
        """
        version: 1
        name: t
        groups:
          A: {validate: [{run: "test -f never.txt"}]}
          B: {depends_on: [A]}
        tasks:
          A1: {run: "echo 1 > a1.txt", group: A}
          B1: {run: "true", group: B}
    """,
    )
    code, events, _ = run_json(repo, "wf.yaml")
    assert code == 1
    assert task_states(repo) == {"A1": "succeeded", "B1": "blocked"}
    assert any(e["kind"] == "gate_failed" and e["data"]["group"] == "A" for e in events)


@pytest.mark.slow
def test_group_gate_runs_on_the_integration_branch(repo: Path) -> None:
    write_workflow(
        repo,
        """
        version: 1
        name: t
        groups:
          A: {validate: [{run: "test -f a1.txt && test -f a2.txt"}]}
          B: {depends_on: [A]}
        tasks:
          A1: {run: "echo 1 > a1.txt", group: A}
          A2: {run: "echo 2 > a2.txt", group: A}
          B1: {run: "cat a1.txt a2.txt > b.txt", group: B}
    """,
    )
    code, events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert any(e["kind"] == "gate_passed" for e in events)
    assert show(repo, "conductor/t", "b.txt") == "1\n2"


@pytest.mark.slow
def test_merge_conflict_is_retried_on_the_new_head(repo: Path, tmp_path: Path) -> None:
    saved = tmp_path / "conflict-instructions"
    write_workflow(
        repo,
        f"""
        version: 1
        name: t
        concurrency: 2
        tasks:
          X: {{run: "echo from-x > README.md"}}
          Y:
            run: 'if grep -q from-x README.md; then cp "$CONDUCTOR_INSTRUCTIONS" {saved};
                  echo from-x-and-y > README.md; else sleep 0.5; echo from-y > README.md; fi'
    """,
    )
    code, events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert any(e["kind"] == "conflict" and e["task"] == "Y" for e in events)
    assert show(repo, "conductor/t", "README.md") == "from-x-and-y"
    assert "README.md" in saved.read_text()
    assert merges(repo, "X") == 1 and merges(repo, "Y") == 1


def live_members(pgid: int) -> list[int]:
    """Processes of a process group that are still running (zombies awaiting init don't count)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _group_gone(pgid_file: Path) -> bool:
    return live_members(int(pgid_file.read_text())) == []


@pytest.mark.slow
@pytest.mark.parametrize("limit", ["timeout: 1s", "idle_timeout: 1s"])
def test_hung_agent_is_killed_with_its_whole_process_group(
    repo: Path, tmp_path: Path, limit: str
) -> None:
    pg = tmp_path / "pgid"
    write_workflow(
        repo,
        f"""
        version: 1
        name: t
        defaults: {{retries: 0}}
        tasks:
          HANG:
            run: 'ps -o pgid= $$ | tr -d " " > {pg}; echo started > work.txt; sleep 1000 & sleep 1000'
            {limit}
    """,
    )
    start = time.monotonic()
    code, events, _ = run_json(repo, "wf.yaml")
    assert code == 1 and time.monotonic() - start < 30
    failed = next(e for e in events if e["kind"] == "task_failed")
    assert ("timed out" in failed["data"]["error"]) or ("no output" in failed["data"]["error"])
    assert _group_gone(pg)
    assert show(repo, attempt_branch(repo, "HANG", 1), "work.txt") == "started"


def test_agent_commits_itself_changes_nothing_or_strays(repo: Path) -> None:
    write_workflow(
        repo,
        """
        version: 1
        name: t
        defaults: {retries: 0}
        tasks:
          SELF:
            run: 'echo one > one.txt && git add one.txt && git commit -qm "agent commit" && echo two > two.txt'
          NOTHING: {run: "true", validate: [{changes: {min_files: 1}}]}
          STRAY: {run: "mkdir -p src other && echo x > src/a.py && echo y > other/b.py", touches: ["src/**"]}
    """,
    )
    code, events, _ = run_json(repo, "wf.yaml")
    assert code == 1
    assert task_states(repo) == {"SELF": "succeeded", "NOTHING": "failed", "STRAY": "failed"}
    log = git(repo, "log", "--format=%s", "conductor/t")
    assert "agent commit" in log
    assert show(repo, "conductor/t", "two.txt") == "two"
    stray = next(e for e in events if e["kind"] == "task_failed" and e["task"] == "STRAY")
    assert "other/b.py" in stray["data"]["output"]


@pytest.mark.slow
def test_users_branch_index_and_dirty_tree_are_untouched(repo: Path) -> None:
    write(repo / "README.md", "my uncommitted edit\n")
    write(repo / "staged.txt", "staged\n")
    git(repo, "add", "staged.txt")
    write(repo / "scratch.txt", "untracked\n")
    head, status = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")
    write_workflow(
        repo,
        """
        version: 1
        name: t
        tasks:
          A: {run: "echo changed > README.md"}
    """,
    )
    status = git(repo, "status", "--porcelain")  # includes the new workflow file
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(repo, "status", "--porcelain") == status
    assert (repo / "README.md").read_text() == "my uncommitted edit\n"
    assert show(repo, "conductor/t", "README.md") == "changed"


def test_secrets_never_reach_logs_events_or_store(repo: Path) -> None:
    write_workflow(
        repo,
        """
        version: 1
        name: t
        tasks:
          S:
            run: 'echo "token is $TOKEN"; echo "$TOKEN" > /dev/null'
            env: {TOKEN: "${MY_SECRET}"}
    """,
    )
    secret = "s3cr3t-value-9f8e7d"
    code, events, err = run_json(repo, "wf.yaml", env={"MY_SECRET": secret})
    assert code == 0, err
    state = repo / ".conductor"
    for f in state.rglob("*"):
        if f.is_file() and not f.name.startswith("state.db"):
            assert secret not in f.read_text(errors="replace"), f
    assert secret not in str(events)
    rows = db_rows(repo, "SELECT data FROM events")
    assert all(secret not in r["data"] for r in rows)
    logs = "".join(f.read_text() for f in (state / "runs").glob("*/logs/*.log"))
    assert "token is ***" in logs


def test_missing_secret_refuses_before_anything_starts(repo: Path) -> None:
    write_workflow(
        repo,
        """
        version: 1
        name: t
        tasks:
          S: {run: "true", env: {TOKEN: "${NOT_SET_ANYWHERE}"}}
    """,
    )
    proc = cli(repo, "run", "wf.yaml")
    assert proc.returncode == 2
    assert "NOT_SET_ANYWHERE" in proc.stderr and "Traceback" not in proc.stderr
    assert not (repo / ".conductor" / "state.db").exists()
    assert git(repo, "branch", "--list", "conductor/*") == ""


@pytest.mark.slow
def test_ctrl_c_interrupts_cleanly_and_keeps_partial_work(repo: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    write_workflow(
        repo,
        f"""
        version: 1
        name: t
        tasks:
          LONG: {{run: 'echo partial > partial.txt; touch {started}; sleep 1000'}}
          AFTER: {{run: "true", depends_on: [LONG]}}
    """,
    )
    env = {**os.environ, "PATH": os.environ["PATH"]}
    proc = subprocess.Popen(
        [*conductor_argv(), "run", "wf.yaml"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _out, _err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    run = db_rows(repo, "SELECT * FROM runs")[0]
    assert run["state"] == "interrupted"
    states = task_states(repo)
    assert states["LONG"] == "interrupted" and states["AFTER"] == "pending"
    assert show(repo, attempt_branch(repo, "LONG", 1), "partial.txt") == "partial"


@pytest.mark.slow
def test_second_ctrl_c_kills_at_once(repo: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    write_workflow(
        repo,
        f"""
        version: 1
        name: t
        tasks:
          STUBBORN: {{run: "trap '' TERM; touch {started}; sleep 1000"}}
    """,
    )
    proc = subprocess.Popen([*conductor_argv(), "run", "wf.yaml"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 20
    while not started.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # graceful: TERM, which this agent ignores...
    time.sleep(0.5)
    assert proc.poll() is None  # ...so the runner is still in its grace period
    second = time.monotonic()
    proc.send_signal(signal.SIGINT)  # the impatient second Ctrl-C
    proc.communicate(timeout=30)
    assert time.monotonic() - second < 3.0  # not the 5 s grace period
    assert proc.returncode == 130
    assert task_states(repo)["STUBBORN"] == "interrupted"
