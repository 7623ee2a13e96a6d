#!/usr/bin/env python3
"""Benchmark: what `sandbox:` adds per task, against the same task unconfined, in one run.

One workflow of N pairs of no-op shell tasks, `P<i>` unconfined and `S<i>` sandboxed,
run together (eager, the pairs interleaved) so a noisy neighbour hits both sides alike.
Each task's cost is its attempt's wall time in the store, from worktree to merge: what a
user waits for. The ratio is the median over pairs of S<i>/P<i>. Target: at most 1.3x.

    python scripts/bench_sandbox.py [--pairs 100] [--network none|full|allow] [--concurrency 2]

``--network allow`` lets each sandbox reach one loopback endpoint, so it also pays for the
relay (a forwarder in the sandbox, an asyncio relay on the host).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import attempt_durations, seed_repo


def workflow(pairs: int, network: str, concurrency: int) -> str:
    box = {"none": "true", "full": "{network: full}",
           "allow": "{network: ['127.0.0.1:9999']}"}[network]  # fmt: skip
    lines = ["version: 1", "name: bench", "strategy: eager", f"concurrency: {concurrency}",
             "defaults: {retries: 0}", "tasks:"]  # fmt: skip
    for i in range(pairs):
        lines.append(f"  P{i}: {{run: 'true', sandbox: false}}")
        lines.append(f"  S{i}: {{run: 'true', sandbox: {box}}}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--network", choices=("none", "full", "allow"), default="none")
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = seed_repo(Path(tmp), workflow(args.pairs, args.network, args.concurrency))
        env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b",
               "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "conductor", "run", "wf.yaml", "--quiet"],
                              cwd=repo, env=env, capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"the run failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        took = attempt_durations(repo)
    plain = [took[f"P{i}"] for i in range(args.pairs)]
    boxed = [took[f"S{i}"] for i in range(args.pairs)]
    ratio = statistics.median(s / p for s, p in zip(boxed, plain, strict=True))
    extra = statistics.median(s - p for s, p in zip(boxed, plain, strict=True)) * 1000
    print(f"{args.pairs} pairs of no-op shell tasks, network {args.network}, "
          f"concurrency {args.concurrency}")  # fmt: skip
    print(f"  unconfined: median {statistics.median(plain) * 1000:.0f} ms per task")
    print(f"  sandboxed:  median {statistics.median(boxed) * 1000:.0f} ms per task")
    print(f"  per-task ratio (median of pairs): {ratio:.2f}x, +{extra:.0f} ms "
          f"(target <= 1.3x) {'OK' if ratio <= 1.3 else 'SLOW'}")  # fmt: skip


if __name__ == "__main__":
    main()
