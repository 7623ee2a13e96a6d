#!/usr/bin/env python3
"""Benchmark: what LocalExecutor adds to starting one process, against a bare subprocess.run.

Every task, validator and hook goes through the executor, so its fixed cost per command
(pidfd, poller, log file, process sweep) multiplies by every command of a run. Paired
samples (one of each, alternating) so a noisy neighbour hits both sides alike.
Target (2-core machine): median overhead under 5 ms per command.

    python scripts/bench_exec.py [--samples 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from conductor.exec.base import Limits, Request
from conductor.exec.local import LocalExecutor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=60)
    args = ap.parse_args()
    env, executor = dict(os.environ), LocalExecutor(grace_s=0.3)
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        req = Request(["true"], cwd, env, log_path=cwd / "n.log", limits=Limits(timeout_s=60))
        deltas = []
        for _ in range(args.samples):
            t0 = time.perf_counter()
            subprocess.run(["true"], cwd=cwd, env=env, check=False)
            t1 = time.perf_counter()
            executor.run(req)
            deltas.append((time.perf_counter() - t1) - (t1 - t0))
    ms = statistics.median(deltas) * 1000
    print(f"executor overhead per command: {ms:.2f} ms (median of {args.samples} pairs; "
          f"target < 5 ms) {'OK' if ms < 5 else 'SLOW'}")  # fmt: skip


if __name__ == "__main__":
    main()
