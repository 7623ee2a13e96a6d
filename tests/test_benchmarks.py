"""The benchmarks in scripts/ still run: each with tiny sizes exits 0 and prints its ratio
line (their figures are measured by hand, not here), and the DAG shape they share is the
one their docstrings promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

from benchlib import layer_sizes, layered_deps, workflow_yaml  # noqa: E402


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPTS / name), *args],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_layered_deps_link_each_task_to_3_to_5_of_the_layer_before() -> None:
    deps = layered_deps(200, layers=10)
    assert layer_sizes(deps) == [20] * 10
    assert deps[:20] == [[]] * 20
    for i, d in enumerate(deps[20:], start=20):
        layer = i // 20
        assert 3 <= len(d) <= 5 and all(j // 20 == layer - 1 for j in d), (i, d)
    assert layer_sizes(layered_deps(4, layers=10)) == [1, 1, 1, 1]  # never an empty layer


def test_workflow_yaml_names_the_dependencies() -> None:
    text = workflow_yaml("b", 'echo "x"', 3, [[], [0], [0, 1]])
    assert '  T2: {run: "echo \\"x\\"", depends_on: [T0, T1]}' in text
    assert "concurrency: 3" in text and "strategy: eager" in text


@pytest.mark.slow
def test_bench_run_pairs_flat_and_dag() -> None:
    done = run_script("bench_run.py", "--tasks", "4", "--concurrency", "2", "--layers", "2",
                      "--repeat", "1", "--max-ratio", "1000")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "flat (" in done.stdout and "dag (" in done.stdout
    assert "median of 1 per-pair ratios" in done.stdout
    assert "target met" in done.stdout


@pytest.mark.slow
def test_bench_bigrepo_reports_cold_and_warm(tmp_path: Path) -> None:
    done = run_script("bench_bigrepo.py", "--files", "60", "--tasks", "2", "--repeat", "1",
                      "--cache", str(tmp_path / "cache"), "--max-ratio", "1000")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cold (first run" in done.stdout and "warm (steady state" in done.stdout
    assert "target met: steady-state ratio" in done.stdout
    assert (tmp_path / "cache" / "seed1-files60-v2" / "done").exists()  # kept for the next run


@pytest.mark.slow
def test_bench_status_prints_its_table() -> None:
    done = run_script("bench_status.py", "--repeat", "1", "--tasks", "5", "--events", "10",
                      "--detach-tasks", "2")  # fmt: skip
    # tiny sizes may miss a target by noise (exit 1); the script must still run through
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "| `status --json` |" in done.stdout and "| `run --detach` (2 tasks) |" in done.stdout


@pytest.mark.slow
def test_bench_ab_pairs_this_checkout_with_a_commit() -> None:
    done = run_script("bench_ab.py", "HEAD", "--tasks", "3", "--concurrency", "2",
                      "--rounds", "1")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "this checkout against HEAD, 1 pairs" in done.stdout
    for figure in ("wall", "runner CPU", "children CPU", "context switches"):
        assert any(line.startswith(figure) for line in done.stdout.splitlines()), figure
