#!/usr/bin/env python3
"""Benchmark: `conductor validate` as a whole process against the floor.

The floor is what any YAML + schema + graph tool must pay: starting Python with
yaml, networkx and jsonschema imported, plus a bare CSafeLoader parse of the same
file. Targets (2-core machine): 1,000 tasks < 0.6 s and within 2x of the floor;
10,000 tasks < 3 s; `conductor --help` < 0.25 s.

    python scripts/bench_validate.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(n: int, seed: int = 7) -> str:
    """A workflow of n shell tasks in 10 groups, about 3 dependencies each."""
    rng = random.Random(seed)
    lines = ["version: 1", f"name: bench-{n}", "groups:"]
    lines += [f"  G{g}: {{description: group {g}}}" for g in range(10)]
    lines.append("tasks:")
    for i in range(n):
        deps = sorted({f"T{rng.randrange(i)}" for _ in range(3)}) if i > 3 else []
        lines += [
            f"  T{i}:",
            f"    title: task number {i}",
            f"    group: G{i * 10 // n}",
            f"    run: echo {i} > out/{i}.txt",
            f"    depends_on: [{', '.join(deps)}]",
            f"    outputs: [out/{i}.txt]",
            "    estimate: 1h",
            f"    touches: [out/{i}.txt]",
        ]
    return "\n".join(lines) + "\n"


def timed(argv: list[str], repeat: int) -> float:
    """Median wall time of a whole process, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def conductor_argv() -> list[str]:
    exe = shutil.which("conductor")
    return [exe] if exe else [sys.executable, "-m", "conductor"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rows = []
    help_s = timed([*conductor_argv(), "--help"], args.repeat)
    for n in (1000, 10000):
        wf = tmp / f"wf{n}.yaml"
        wf.write_text(generate(n))
        floor_code = (
            "import yaml, networkx, jsonschema, sys; "
            "yaml.load(open(sys.argv[1]), Loader=yaml.CSafeLoader)"
        )
        floor = timed([sys.executable, "-c", floor_code, str(wf)], args.repeat)
        ours = timed([*conductor_argv(), "validate", str(wf)], args.repeat)
        rows.append((n, ours, floor))
    print(f"conductor --help: {help_s:.3f} s (target < 0.25 s)")
    print("| tasks | conductor validate | floor (imports + CSafeLoader) | ratio |")
    print("|---|---|---|---|")
    for n, ours, floor in rows:
        print(f"| {n:,} | {ours:.3f} s | {floor:.3f} s | {ours / floor:.2f}x |")
    ok = rows[0][1] < 0.6 and rows[0][1] / rows[0][2] < 2 and rows[1][1] < 3 and help_s < 0.25
    print("targets met" if ok else "TARGETS MISSED")
    shutil.rmtree(tmp)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
