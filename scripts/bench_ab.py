#!/usr/bin/env python3
"""Benchmark: this checkout's conductor against itself at another commit, paired.

On a shared 2-core machine one run of the same workflow varies by +-20%, so a change
worth 5% shows only in pairs: REV's conductor (a `git archive` of it in a temp dir) and
this checkout's run the same no-op workflow alternately (the order flipped every round),
each in a fresh repository, with the same interpreter and packages. Per pair it takes the
ratio (this / REV) of the wall time, the runner's own CPU, its children's CPU (git, the
tasks) and its voluntary context switches, and prints each one's median and spread.

    python scripts/bench_ab.py REV [--tasks 200] [--concurrency 8] [--shape flat|dag]
                                   [--rounds 6]

Informational: no target, exit 0 (a figure below 1.00x is this checkout being faster).
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from benchlib import flat_deps, isolated_env, layered_deps, make_repo, median, workflow_yaml

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("wall", "runner CPU", "children CPU", "context switches")
# Runs conductor from the source dir in argv[1] on wf.yaml in argv[2]; prints the figures.
RUNNER = """
import os, resource, sys, time
sys.path.insert(0, sys.argv[1]); os.chdir(sys.argv[2]); t0 = time.monotonic()
sys.argv = ["conductor", "run", "wf.yaml", "--quiet"]
from conductor.cli import main
try:
    main()
except SystemExit as exc:
    if exc.code:
        raise
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(time.monotonic() - t0, me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime,
      me.ru_nvcsw, file=sys.stderr)
"""


def export(rev: str, into: Path) -> Path:
    """The ``conductor`` package of commit ``rev`` under ``into`` (read from git, so the
    repository's worktrees and branches are untouched)."""
    tar = subprocess.run(["git", "archive", rev, "conductor", "schemas"], cwd=ROOT,
                         capture_output=True, check=True).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return into


def one_run(src: Path, work: Path, text: str, env: dict[str, str]) -> list[float]:
    repo = make_repo(work, env)
    (repo / "wf.yaml").write_text(text)
    done = subprocess.run([sys.executable, "-c", RUNNER, str(src), str(repo)], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"conductor from {src} failed:\n{done.stderr[-2000:]}")
    shutil.rmtree(work)
    return [float(x) for x in done.stderr.strip().splitlines()[-1].split()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("rev", help="the commit to compare against, e.g. HEAD~3")
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--shape", choices=("flat", "dag"), default="flat")
    ap.add_argument("--rounds", type=int, default=6, help="pairs to run")
    args = ap.parse_args(argv)
    deps = flat_deps(args.tasks) if args.shape == "flat" else layered_deps(args.tasks)
    text = workflow_yaml("ab", "true", args.concurrency, deps)
    root = Path(tempfile.mkdtemp(prefix="bench_ab."))
    try:
        env = isolated_env(root / "home", bytecode_cache=True)
        sides = {"this": ROOT, args.rev: export(args.rev, root / "rev")}
        one_run(sides[args.rev], root / "warm-up", text, env)  # bytecode of both compiled
        one_run(ROOT, root / "warm-up", text, env)
        runs: dict[str, list[list[float]]] = {name: [] for name in sides}
        for r in range(args.rounds):
            for name in (sides if r % 2 == 0 else reversed(list(sides))):
                runs[name].append(one_run(sides[name], root / f"{r}-{len(runs[name])}", text, env))
                print(f"round {r + 1} {name}: {runs[name][-1][0]:.2f} s", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{args.shape}, {args.tasks} tasks, concurrency {args.concurrency}: this checkout "
          f"against {args.rev}, {args.rounds} pairs (median of per-pair ratios)\n")  # fmt: skip
    for i, figure in enumerate(FIGURES):
        ours = [run[i] for run in runs["this"]]
        theirs = [run[i] for run in runs[args.rev]]
        ratios = [a / b for a, b in zip(ours, theirs, strict=True) if b > 0]
        spread = f"{min(ratios):.2f}x-{max(ratios):.2f}x" if ratios else "-"
        ratio = f"{median(ratios):.3f}x" if ratios else "-"
        print(f"{figure:17s} {median(ours):10.2f} vs {median(theirs):10.2f}  {ratio} ({spread})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
