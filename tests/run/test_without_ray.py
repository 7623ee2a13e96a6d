"""Ray is an optional extra: without it conductor imports and runs, and a workflow whose
tasks use a Ray pool stops at preflight with exit 2 and the install command. The Ray
executor's own tests (against a real cluster) are in tests/remote/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conductor.run.outcome import Outcome
from conductor.run.retries import MAX_INFRA_RETRIES, TaskBook, may_retry, record_retry
from conductor.spec.model import Task
from tests.testing.runner import write_workflow

# conductor's CLI with every import of ray failing, as on a machine without the extra
NO_RAY = "import sys; sys.modules['ray'] = None; from conductor.cli import main; main()"

WORKFLOW = """
    version: 1
    name: t
    pools:
      gpu: {executor: ray, resources: {GPU: 1}}
    tasks:
      A: {run: "true", pool: gpu}
"""


def _cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", NO_RAY, *args], cwd=repo, text=True,
                          capture_output=True, timeout=60)  # fmt: skip


def test_every_module_imports_without_ray() -> None:
    code = ("import sys; sys.modules['ray'] = None\n"
            "import conductor.remote.call, conductor.remote.hub, conductor.remote.worker\n"
            "import conductor.run.remote_attempt, conductor.run.remote_checks\n"
            "import conductor.git.bundles\nprint('ok')")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], text=True, capture_output=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_ray_pool_without_ray_is_an_exit_2_with_the_install_command(repo: Path) -> None:
    write_workflow(repo, WORKFLOW)
    for args in (["run", "wf.yaml", "--validate-only"], ["run", "wf.yaml"]):
        proc = _cli(repo, *args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        text = proc.stdout + proc.stderr
        assert "pool gpu runs on Ray (`executor: ray`), but Ray is not installed" in text
        assert 'pip install "conductor-dag[ray]"' in text
        assert "Traceback" not in proc.stderr


def test_a_local_workflow_runs_without_ray(repo: Path) -> None:
    write_workflow(repo, 'version: 1\nname: t\ntasks:\n  A: {run: "echo a > a.txt"}\n')
    proc = _cli(repo, "run", "wf.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _lost(n: int) -> Outcome:
    return Outcome("A", n, False, "worker node lost (NodeDiedError)", extras={"infra": True})


def test_an_attempt_lost_to_infrastructure_costs_no_retry() -> None:
    task, book = Task(id="A", retries=0), TaskBook(attempts=1)
    assert may_retry(task, book, _lost(1))  # no `retries`, and still retried
    record_retry(book, _lost(1), 0.0)
    assert book.failures == 0 and book.lost == 1
    for n in range(2, MAX_INFRA_RETRIES + 1):
        record_retry(book, _lost(n), 0.0)
    assert not may_retry(task, book, _lost(MAX_INFRA_RETRIES + 1))  # the cluster keeps losing it
    failed = Outcome("A", 9, False, "agent exited 1")
    assert not may_retry(task, book, failed)  # a real failure still counts against `retries`
