"""What a user sees and steers: logs, alerts, queue reasons, warnings, fail-fast, setup."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.testing.runner import cli, db_rows, run_json, task_states, write_workflow


@pytest.mark.slow
def test_logs_prints_an_attempts_output(repo: Path) -> None:
    write_workflow(
        repo,
        """
version: 1
name: t
tasks:
  A: {run: "echo hello from A; echo second line"}
""",
    )
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    run = db_rows(repo, "SELECT id FROM runs")[0]["id"]
    out = cli(repo, "logs", run, "A").stdout
    assert "hello from A" in out and "second line" in out
    bad = cli(repo, "logs", run, "A", "--attempt", "7")
    assert bad.returncode == 2 and "attempts: 1" in bad.stderr
    assert cli(repo, "logs", run, "NOPE").returncode == 2


def test_fail_fast_stops_dispatching_after_the_first_failure(repo: Path) -> None:
    write_workflow(
        repo,
        """
version: 1
name: t
concurrency: 1
defaults: {retries: 0}
tasks:
  BAD: {run: "exit 1", priority: high}
  LATER: {run: "true"}
""",
    )
    code, events, _ = run_json(repo, "wf.yaml", "--fail-fast")
    assert code == 1
    assert task_states(repo) == {"BAD": "failed", "LATER": "cancelled"}
    assert "LATER" not in {e["task"] for e in events if e["kind"] == "task_started"}


def test_workspace_setup_failure_fails_the_attempt_with_its_output(repo: Path) -> None:
    write_workflow(
        repo,
        """
version: 1
name: t
defaults: {retries: 0}
workspace: {setup: ["echo installing deps; exit 9"]}
tasks:
  A: {run: "echo never > a.txt"}
""",
    )
    code, events, _ = run_json(repo, "wf.yaml")
    assert code == 1
    failed = next(e for e in events if e["kind"] == "task_failed")
    assert "setup" in failed["data"]["error"] and "installing deps" in failed["data"]["output"]


@pytest.mark.slow
def test_parallel_tasks_get_distinct_ports_and_queue_reasons(repo: Path, tmp_path: Path) -> None:
    ports = tmp_path / "ports"
    body = f'echo "$CONDUCTOR_PORT" >> {ports}; sleep 0.4'
    write_workflow(
        repo,
        f"""
version: 1
name: t
concurrency: 3
tasks:
  A: {{run: '{body}'}}
  B: {{run: '{body}'}}
  C: {{run: '{body}'}}
  D: {{run: '{body}'}}
""",
    )
    code, events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    seen = ports.read_text().split()
    assert len(seen[:3]) == len(set(seen[:3])) == 3  # the three running at once differ
    queued = [e for e in events if e["kind"] == "task_queued"]
    assert queued and queued[0]["task"] == "D"
    assert queued[0]["data"] == {"reason": "all 3 slots busy", "position": 1}


@pytest.mark.slow
def test_timeout_warning_alerts_and_recent_events(repo: Path) -> None:
    write_workflow(
        repo,
        """
version: 1
name: t
tasks:
  SLOWISH: {run: "sleep 4.6; echo done > d.txt", timeout: 5s}
""",
    )
    code, events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    warn = [e for e in events if e["kind"] == "task_warning"]
    assert warn and warn[0]["data"]["warning"] == "80% of timeout used"
    doc = json.loads(cli(repo, "status", "--alerts", "--json").stdout)
    assert [e["kind"] for e in doc["events"]] == ["task_warning"]
    doc = json.loads(cli(repo, "status", "--recent", "2", "--json").stdout)
    assert [e["kind"] for e in doc["events"]] == ["run_finished", "log_written"]


@pytest.mark.slow
def test_low_disk_pauses_dispatch_with_a_system_alert(repo: Path) -> None:
    write_workflow(
        repo,
        """
version: 1
name: t
tasks:
  A: {run: "echo a > a.txt"}
""",
    )
    # no machine has an exabyte free: dispatch must pause and say why
    proc = cli(repo, "run", "wf.yaml", "--detach", env={"CONDUCTOR_MIN_FREE_DISK_MB": "1e12"})
    run = proc.stdout.splitlines()[0]
    deadline = time.monotonic() + 20
    alerts: list[dict[str, object]] = []
    while not alerts:
        assert time.monotonic() < deadline
        time.sleep(0.2)
        doc = json.loads(cli(repo, "status", run, "--alerts", "--json").stdout)
        alerts = [e for e in doc["events"] if e["kind"] == "system_alert"]
    assert "free disk" in str(alerts[0]["data"]) and task_states(repo) == {"A": "pending"}
    assert cli(repo, "cancel", run).returncode == 0
    assert db_rows(repo, "SELECT state FROM runs")[0]["state"] == "cancelled"


@pytest.mark.slow
def test_verbose_shows_agent_output_and_validate_only_shows_versions(repo: Path) -> None:
    write_workflow(
        repo,
        """
version: 1
name: t
tasks:
  A: {run: "echo visible-output-line"}
  B:
    agent: claude
    prompt: |
      ```fake-agent
      write b.txt x
      ```
""",
    )
    proc = cli(repo, "run", "wf.yaml", "--validate-only")
    assert "agent claude: 2.1.330 (Claude Code)" in proc.stdout
    proc = cli(repo, "run", "wf.yaml", "--verbose")
    assert proc.returncode == 0, proc.stderr
    assert "A: | visible-output-line" in proc.stdout


@pytest.mark.slow
def test_log_dir_from_repo_config_and_run_placeholder(repo: Path) -> None:
    (repo / "conductor.toml").write_text('log_dir = "reports"\n')
    write_workflow(repo, "version: 1\nname: t\ntasks:\n  A: {run: 'true'}\n")
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    run = db_rows(repo, "SELECT id FROM runs")[0]["id"]
    assert "# Execution log" in (repo / "reports" / run / "EXECUTION_LOG.md").read_text()
    write_workflow(repo, "version: 1\nname: u\nlog: logs/{run}.md\ntasks:\n  A: {run: 'true'}\n")
    code, _, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    run = db_rows(repo, "SELECT id FROM runs ORDER BY started DESC LIMIT 1")[0]["id"]
    assert (repo / "logs" / f"{run}.md").exists()
