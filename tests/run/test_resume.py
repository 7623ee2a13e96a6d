"""Runs that survive: kill -9 + resume, detach, status, watch, cancel, reruns across runs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.testing.repos import attempt_worktrees, git, pooled_worktrees
from tests.testing.runner import (
    attempt_branch,
    cli,
    conductor_argv,
    db_rows,
    run_json,
    task_states,
    write_workflow,
)


def live_processes(marker: str) -> list[int]:
    """Running (non-zombie) processes whose command line mentions ``marker``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            found.append(int(proc.name))
    return found


def chaos_workflow(repo: Path, marker: str, n: int = 20) -> None:
    rng = random.Random(n)
    lines = ["version: 1", "name: t", "concurrency: 4", "defaults: {retries: 2}", "tasks:"]
    for i in range(n):
        deps = sorted({f"T{rng.randrange(i)}" for _ in range(2)}) if i >= 3 else []
        pause = rng.choice(["0.05", "0.2", "0.4"])
        lines.append(
            f"  T{i}: {{run: 'echo {marker} > /dev/null; echo t{i} > f{i}.txt; sleep {pause}',"
            f" depends_on: [{', '.join(deps)}]}}"
        )
    write_workflow(repo, "\n".join(lines) + "\n")


def latest_run(repo: Path) -> str:
    return str(db_rows(repo, "SELECT id FROM runs ORDER BY started DESC LIMIT 1")[0]["id"])


def assert_finished_cleanly(repo: Path, marker: str, n: int = 20) -> None:
    run = latest_run(repo)
    rows = db_rows(repo, "SELECT state FROM runs WHERE id = ?", run)
    assert rows[0]["state"] == "succeeded"
    for i in range(n):
        merges = git(repo, "log", "conductor/t", "--merges", "--format=%H",
                     "--grep", f"^Conductor-Task: T{i}$")  # fmt: skip
        assert len(merges.split()) == 1, f"T{i} merged {len(merges.split())} times"
        assert git(repo, "show", f"conductor/t:f{i}.txt") == f"t{i}"
    assert live_processes(marker) == []
    assert attempt_worktrees(repo) == []
    assert len(pooled_worktrees(repo)) <= 4  # bounded by the concurrency, and sound
    assert git(repo, "for-each-ref", "refs/conductor") == ""


def drive_with_kills(repo: Path, env: dict[str, str], kills: int, seed: int) -> None:
    """Start the run, SIGKILL the runner at random moments, resume until it finishes."""
    rng = random.Random(seed)
    argv = [*conductor_argv(), "run", "wf.yaml"]
    for round_ in range(kills + 6):
        proc = subprocess.Popen(argv, cwd=repo, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        if round_ < kills:
            time.sleep(rng.uniform(0.3, 1.5))
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            return
        assert proc.returncode == -signal.SIGKILL, err
        if (repo / ".conductor" / "state.db").exists() and db_rows(repo, "SELECT id FROM runs"):
            argv = [*conductor_argv(), "resume", latest_run(repo)]
    raise AssertionError("the run never finished")


@pytest.mark.slow
def test_chaos_random_kills_then_resume(repo: Path) -> None:
    marker = f"chaos-{os.getpid()}-r"
    chaos_workflow(repo, marker)
    drive_with_kills(repo, dict(os.environ), kills=4, seed=1)
    assert_finished_cleanly(repo, marker)


@pytest.mark.slow
@pytest.mark.parametrize("step", ["worktree", "agent:3", "commit:2", "checked:4", "merged:5",
                                  "recorded:6"])  # fmt: skip
def test_kill_at_each_lifecycle_step_then_resume(repo: Path, step: str) -> None:
    marker = f"chaos-{os.getpid()}-{step.replace(':', '-')}"
    chaos_workflow(repo, marker)
    proc = cli(repo, "run", "wf.yaml", env={"CONDUCTOR_CRASH_AT": step})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    status = json.loads(cli(repo, "status", "--json").stdout)
    assert status["run"]["state"] == "interrupted"
    proc = cli(repo, "resume", latest_run(repo))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_finished_cleanly(repo, marker)
    # the interrupted attempt did not use up a retry
    failed = db_rows(repo, "SELECT task_id, n, error FROM attempts WHERE state = 'failed'")
    assert failed == []


@pytest.mark.slow
def test_interrupted_attempt_work_is_committed_and_its_agent_killed(
    repo: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "agent.pid"
    write_workflow(
        repo,
        f"""
        version: 1
        name: t
        tasks:
          LONG: {{run: 'echo $$ > {pid_file}; echo partial > p.txt; sleep 1000'}}
    """,
    )
    proc = subprocess.Popen([*conductor_argv(), "run", "wf.yaml"], cwd=repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)
    proc.kill()
    proc.wait()
    agent = int(pid_file.read_text())
    os.kill(agent, 0)  # the orphaned agent is still there...
    run = latest_run(repo)
    resumed = subprocess.Popen([*conductor_argv(), "resume", run], cwd=repo,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 20
    while agent in live_processes("sleep 1000") or not _stat_is_dead(agent):
        assert time.monotonic() < deadline, "resume did not kill the orphaned agent"
        time.sleep(0.1)
    resumed.send_signal(signal.SIGINT)
    resumed.wait(timeout=30)
    assert git(repo, "show", attempt_branch(repo, "LONG", 1) + ":p.txt") == "partial"
    att = db_rows(repo, "SELECT state FROM attempts WHERE n = 1")[0]
    assert att["state"] == "interrupted"


def _stat_is_dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


SLOW = """
version: 1
name: t
concurrency: 2
tasks:
  A: {run: "echo a > a.txt; sleep 30"}
  B: {run: "echo b > b.txt"}
  C: {run: "echo c > c.txt", depends_on: [A]}
"""


@pytest.mark.slow
def test_detach_status_watch_cancel_and_resume(repo: Path) -> None:
    write_workflow(repo, SLOW)
    start = time.monotonic()
    proc = cli(repo, "run", "wf.yaml", "--detach")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 10
    run = proc.stdout.splitlines()[0]
    assert run == latest_run(repo)
    deadline = time.monotonic() + 20
    while task_states(repo).get("A") != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    status = json.loads(cli(repo, "status", run, "--json").stdout)
    assert status["run"]["state"] == "running"
    assert {t["id"] for t in status["tasks"]} == {"A", "B", "C"}
    # a second runner on the same run is refused
    second = cli(repo, "resume", run)
    assert second.returncode == 2 and "still running" in second.stderr
    watcher = subprocess.Popen([*conductor_argv(), "watch", run], cwd=repo, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    cancel = cli(repo, "cancel", run)
    assert cancel.returncode == 0, cancel.stderr
    assert "cancelled" in cancel.stdout
    out, _ = watcher.communicate(timeout=30)
    assert "run cancelled" in out and "A: started" in out
    assert git(repo, "show", attempt_branch(repo, "A", 1) + ":a.txt") == "a"
    # resume after cancel finishes the rest; A is not rerun from scratch by mistake twice
    write_workflow(repo, SLOW.replace("sleep 30", "true"))
    proc = cli(repo, "resume", run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert task_states(repo) == {"A": "succeeded", "B": "succeeded", "C": "succeeded"}
    assert git(repo, "show", "conductor/t:c.txt") == "c"


@pytest.mark.slow
def test_two_runs_of_one_workflow_refused_other_workflows_fine(repo: Path) -> None:
    write_workflow(repo, SLOW)
    write_workflow(repo, "version: 1\nname: other\ntasks:\n  X: {run: 'true'}\n", "other.yaml")
    run = cli(repo, "run", "wf.yaml", "--detach").stdout.splitlines()[0]
    again = cli(repo, "run", "wf.yaml")
    assert (
        again.returncode == 2 and f"run {run}" in again.stderr and "still running" in again.stderr
    )
    other = cli(repo, "run", "other.yaml")
    assert other.returncode == 0, other.stderr
    cli(repo, "cancel", run)


def test_status_of_a_killed_run_says_interrupted_with_a_hint(repo: Path) -> None:
    write_workflow(repo, SLOW)
    proc = cli(repo, "run", "wf.yaml", env={"CONDUCTOR_CRASH_AT": "agent"})
    assert proc.returncode == -signal.SIGKILL
    out = cli(repo, "status").stdout
    assert "interrupted" in out and "conductor resume" in out
    runs = json.loads(cli(repo, "runs", "--json").stdout)["runs"]
    assert runs[0]["state"] == "interrupted"


@pytest.mark.slow
def test_progress_from_inside_a_task(repo: Path) -> None:
    write_workflow(
        repo,
        """
        version: 1
        name: t
        tasks:
          P: {run: "conductor progress 40 'half way there' && echo x > x.txt"}
    """,
    )
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    rows = db_rows(repo, "SELECT data FROM events WHERE kind = 'task_progress'")
    assert any(json.loads(r["data"]).get("message") == "half way there" for r in rows)
    bad = cli(repo, "progress", "50")
    assert bad.returncode == 2 and "not inside a conductor task" in bad.stderr


@pytest.mark.slow
def test_up_to_date_tasks_are_skipped_until_their_prompt_changes(repo: Path) -> None:
    (repo / "prompts").mkdir()
    (repo / "prompts" / "a.md").write_text("version one\n")
    write_workflow(
        repo,
        """
        version: 1
        name: t
        agents:
          fake: {command: [bash, -c, 'cp "$0" out-$CONDUCTOR_TASK_ID.md', "{prompt_file}"]}
        tasks:
          A: {agent: fake, prompt_file: prompts/a.md}
          B: {agent: fake, prompt: b, depends_on: [A]}
    """,
    )
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    code, events, _ = run_json(repo, "wf.yaml")
    assert code == 0
    assert {e["task"] for e in events if e["kind"] == "task_skipped"} == {"A", "B"}
    assert not [e for e in events if e["kind"] == "task_started"]
    plan = cli(repo, "run", "wf.yaml", "--validate-only").stdout
    assert "up to date" in plan
    (repo / "prompts" / "a.md").write_text("version two\n")
    code, events, _ = run_json(repo, "wf.yaml")
    assert code == 0
    assert {e["task"] for e in events if e["kind"] == "task_started"} == {"A", "B"}
    assert "version two" in git(repo, "show", "conductor/t:out-A.md")
    code, events, _ = run_json(repo, "wf.yaml", "--force")
    assert {e["task"] for e in events if e["kind"] == "task_started"} == {"A", "B"}


GROUPS = """
version: 1
name: t
groups:
  GA: {}
  GB: {depends_on: [GA]}
tasks:
  A1: {run: "echo a > a.txt", group: GA}
  B1: {run: "cat a.txt > b.txt", group: GB}
"""


@pytest.mark.slow
def test_batch_groups_across_runs(repo: Path) -> None:
    write_workflow(repo, GROUPS)
    refused = cli(repo, "run", "wf.yaml", "--batch-group", "GB")
    assert refused.returncode == 2 and "A1" in refused.stderr and "--with-deps" in refused.stderr
    assert not db_rows(repo, "SELECT * FROM runs")
    assert cli(repo, "run", "wf.yaml", "--batch-group", "GA").returncode == 0
    code, events, err = run_json(repo, "wf.yaml", "--batch-group", "GB")
    assert code == 0, err
    assert {e["task"] for e in events if e["kind"] == "task_started"} == {"B1"}
    assert git(repo, "show", "conductor/t:b.txt") == "a"


@pytest.mark.slow
def test_with_deps_and_from(repo: Path) -> None:
    write_workflow(repo, GROUPS)
    code, events, err = run_json(repo, "wf.yaml", "--batch-group", "GB", "--with-deps")
    assert code == 0, err
    assert {e["task"] for e in events if e["kind"] == "task_started"} == {"A1", "B1"}
    code, events, err = run_json(repo, "wf.yaml", "--from", "A1")
    assert code == 0, err
    assert [e["task"] for e in events if e["kind"] == "task_started"] == ["A1", "B1"]


@pytest.mark.slow
def test_cancel_one_task_blocks_its_dependents(repo: Path) -> None:
    write_workflow(repo, SLOW)
    run = cli(repo, "run", "wf.yaml", "--detach").stdout.splitlines()[0]
    deadline = time.monotonic() + 20
    while task_states(repo).get("A") != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert cli(repo, "cancel", run, "--task", "A").returncode == 0
    deadline = time.monotonic() + 30
    while db_rows(repo, "SELECT state FROM runs")[0]["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert task_states(repo) == {"A": "cancelled", "B": "succeeded", "C": "blocked"}


@pytest.mark.slow
def test_a_run_killed_in_its_start_up_checks_resumes_and_merges(repo: Path) -> None:
    # killed after its row but before it took the integration branch: resume does the rest
    write_workflow(repo, "version: 1\nname: t\ntasks:\n  A: {run: 'echo a > a.txt'}\n"
                   "  B: {run: 'echo b > b.txt', depends_on: [A]}\n")  # fmt: skip
    env = {**os.environ, "CONDUCTOR_CRASH_AT": "claimed"}
    proc = subprocess.run([*conductor_argv(), "run", "wf.yaml"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert git(repo, "branch", "--list", "conductor/t") == ""
    done = cli(repo, "resume", latest_run(repo))
    assert done.returncode == 0, done.stderr
    assert git(repo, "show", "conductor/t:b.txt") == "b"
    assert task_states(repo) == {"A": "succeeded", "B": "succeeded"}
