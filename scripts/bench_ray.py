#!/usr/bin/env python3
"""Benchmark: what the Ray executor adds per task, against the local executor, in one run.

Starts a local two-node Ray cluster (``ray.cluster_utils``: a head and one more node, one
CPU each, as small as the test cluster), then runs one workflow of N pairs of no-op shell
tasks — ``L<i>`` in the local pool, ``R<i>`` in a Ray pool — together (eager, interleaved)
so a noisy neighbour hits both sides alike. A task's cost is its attempt's wall time in
the store, from its start to its merge: what a user waits for. The overhead is the median
over pairs of R<i> - L<i>: bundle out, Ray task, worker cache and worktree, bundle back.

    python scripts/bench_ray.py [--pairs 100] [--concurrency 2]

Needs the `ray` extra (pip install ".[ray]").
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import attempt_durations, seed_repo


def workflow(pairs: int, concurrency: int) -> str:
    lines = ["version: 1", "name: bench", "strategy: eager", f"concurrency: {concurrency}",
             "defaults: {retries: 0}", "pools:", "  cluster: {executor: ray}",
             "tasks:"]  # fmt: skip
    for i in range(pairs):
        lines.append(f"  L{i}: {{run: 'true'}}")
        lines.append(f"  R{i}: {{run: 'true', pool: cluster}}")
    return "\n".join(lines) + "\n"


def cluster(tmp: Path) -> object:
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=False)
    for name in ("head", "node"):
        env = {"CONDUCTOR_WORKER_DIR": str(tmp / "workers" / name)}
        c.add_node(num_cpus=1, object_store_memory=80 << 20, env_vars=env, include_dashboard=False)
    c.wait_for_nodes()
    return c


def run(repo: Path, address: str) -> tuple[subprocess.CompletedProcess[str], float]:
    who = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b"}  # fmt: skip
    env = {**os.environ, "RAY_ADDRESS": address, **who}
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "conductor", "run", "wf.yaml", "--quiet"],
                          cwd=repo, env=env, capture_output=True, text=True)  # fmt: skip
    return done, time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = seed_repo(Path(tmp), workflow(args.pairs, args.concurrency))
        c = cluster(Path(tmp))
        try:
            done, wall = run(repo, c.address)  # type: ignore[attr-defined]
        finally:
            c.shutdown()  # type: ignore[attr-defined]
        if done.returncode != 0:
            sys.exit(f"the run failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        took = attempt_durations(repo)
    local = [took[f"L{i}"] for i in range(args.pairs)]
    remote = [took[f"R{i}"] for i in range(args.pairs)]
    extra = statistics.median(r - p for r, p in zip(remote, local, strict=True)) * 1000
    print(f"{args.pairs} pairs of no-op shell tasks, concurrency {args.concurrency}, "
          f"local two-node Ray cluster; the whole run took {wall:.1f}s")  # fmt: skip
    print(f"  local executor: median {statistics.median(local) * 1000:.0f} ms per task")
    print(f"  ray executor:   median {statistics.median(remote) * 1000:.0f} ms per task "
          f"(p90 {statistics.quantiles(remote, n=10)[-1] * 1000:.0f} ms)")  # fmt: skip
    print(f"  per-task overhead of ray (median of pairs): +{extra:.0f} ms")


if __name__ == "__main__":
    main()
