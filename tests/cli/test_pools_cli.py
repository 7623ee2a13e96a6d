"""Pools with real shell tasks through the command line: slots hold under a larger
concurrency, `status --json` and `plan` show the pools, a closed pool ends the run in a
deadlock that `resume` finishes once the pool is opened, and a task's skills must be
offered (issue 13)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.testing.runner import cli, db_rows, latest_run, run_json, write_workflow

SLOW = 'sleep 0.4; echo "$(date +%s.%N) $CONDUCTOR_TASK_ID" > "$CONDUCTOR_TASK_ID.txt"'


def overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _span(text: str) -> tuple[float, float]:
    start, end = text.split()
    return float(start), float(end)


def test_a_pools_slots_hold_with_shell_tasks(repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "spans"
    log.mkdir()
    body = f'start=$(date +%s.%N); {SLOW}; echo "$start $(date +%s.%N)" > {log}/$CONDUCTOR_TASK_ID'
    tasks = "".join(f"  S{i}: {{run: '{body}', pool: two}}\n" for i in range(4))
    (repo / "wf.yaml").write_text(
        "version: 1\nname: t\nconcurrency: 6\npools:\n  two: {slots: 2, skills: [shell]}\n"
        f"tasks:\n{tasks}  L0: {{run: '{body}', skills: [shell]}}\n"
    )
    code, _events, err = run_json(repo, "wf.yaml")
    assert code == 0, err
    spans = [_span(p.read_text()) for p in log.iterdir()]
    assert len(spans) == 5 and overlap(spans) == 2  # L0 asks for `shell`: it lands in `two`
    rows = db_rows(repo, "SELECT task_id, pool, host FROM attempts")
    assert {r["task_id"]: r["pool"] for r in rows} == {"S0": "two", "S1": "two", "S2": "two",
                                                       "S3": "two", "L0": "two"}  # fmt: skip
    assert {r["host"] for r in rows} == {socket.gethostname()}
    doc = json.loads(cli(repo, "status", "--json").stdout)
    assert [(p["name"], p["slots"], p["used"]) for p in doc["pools"]] == [("local", 6, 0),
                                                                         ("two", 2, 0)]  # fmt: skip


def test_plan_shows_pools(repo: Path) -> None:
    write_workflow(repo, """
        version: 1
        name: t
        pools:
          gpu: {slots: 1, usd: 5, executor: ray, resources: {GPU: 1}}
        tasks:
          A: {run: "true", pool: gpu, estimate: 1h}
          B: {run: "true"}
        """)
    doc = json.loads(cli(repo, "plan", "wf.yaml", "--json").stdout)
    assert [(p["name"], p["slots"], p["tasks"], p["effort_hours"]) for p in doc["pools"]] == [
        ("local", 4, 1, 0), ("gpu", 1, 1, 1)]  # fmt: skip
    gpu = doc["pools"][1]
    assert (gpu["executor"], gpu["resources"], gpu["usd"]) == ("ray", {"GPU": 1}, 5)
    assert [t["pool"] for t in doc["tasks"]] == ["gpu", "local"]


def test_a_closed_pool_deadlocks_then_resume_finishes(repo: Path) -> None:
    wf = """
        version: 1
        name: t
        pools:
          gpu: {{slots: {slots}}}
        tasks:
          A: {{run: "echo a > a.txt"}}
          B: {{run: "echo b > b.txt", pool: gpu, depends_on: [A]}}
        """
    write_workflow(repo, wf.format(slots=0))
    proc = cli(repo, "run", "wf.yaml", env={"CONDUCTOR_DEADLOCK_GRACE": "0.3"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("DEADLOCK, the run ends failed (resumable): nothing ran or could start for 0.3s:"
            " B: pool gpu has no slots") in proc.stdout  # fmt: skip
    run = latest_run(repo)
    doc = json.loads(cli(repo, "status", "--json").stdout)
    assert doc["run"]["state"] == "failed"
    assert {t["id"]: t["state"] for t in doc["tasks"]} == {"A": "succeeded", "B": "pending"}
    alerts = cli(repo, "status", "--alerts").stdout
    assert "deadlock" in alerts and "B: pool gpu has no slots" in alerts
    write_workflow(repo, wf.format(slots=1))
    again = cli(repo, "resume", run)
    assert again.returncode == 0, again.stdout + again.stderr
    rows = db_rows(repo, "SELECT task_id, COUNT(*) AS n FROM attempts GROUP BY task_id")
    assert {r["task_id"]: r["n"] for r in rows} == {"A": 1, "B": 1}


def test_skills_no_pool_offers_are_refused_before_anything_runs(repo: Path) -> None:
    write_workflow(repo, """
        version: 1
        name: t
        pools:
          py: {skills: [python]}
        tasks:
          A: {run: "true", skills: [python, rust]}
        """)
    proc = cli(repo, "run", "wf.yaml")
    assert proc.returncode == 2
    assert "wf.yaml:6:28: tasks.A.skills: no pool offers `rust`" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (repo / ".conductor" / "state.db").exists()
