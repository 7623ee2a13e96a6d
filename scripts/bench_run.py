#!/usr/bin/env python3
"""Benchmark: `conductor run` of N no-op shell tasks against the unavoidable work, by hand.

Two workflows of N tasks `run: "true"` at concurrency C (default 200 and 8), `strategy:
eager`: **flat** (independent tasks) and **dag** (L layers, default 10 of 20, each task
depending on 3-5 tasks of the layer before). conductor runs each as a whole process
(`conductor run wf.yaml`: start-up, store, report and all). The references do, per task
and C at a time, only what any "one worktree per task, merged into an integration branch"
runner must do: `git worktree add -b` from the integration head, the command through
`bash -c`, `git add -A` + `git commit`, then one merge at a time (`merge-tree
--write-tree`, `commit-tree`, compare-and-swap `update-ref`) and `git worktree remove`.

* `shell`: scripts/bench_reference.sh (xargs -P, flock; a DAG layer by layer);
* `python`: the same git calls from C threads of one Python process, a lock around merges,
  a task started as soon as its own dependencies merged (benchlib.by_hand).

Paired: each round runs conductor, shell and python once (the order flipped every round),
each in a fresh repository, and the ratio of the round is conductor's wall time over the
reference's. The figure is the median of those per-pair ratios against the faster floor
(the reference whose median ratio is the higher), so one noisy run moves one ratio only.
Exit status 1 when a shape's ratio is above --max-ratio (1.15).

    python scripts/bench_run.py [--tasks 200] [--concurrency 8] [--repeat 5] [--shapes flat,dag]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    REF_BRANCH,
    Sample,
    alternate,
    check_merges,
    conductor_argv,
    flat_deps,
    isolated_env,
    layer_sizes,
    layered_deps,
    make_repo,
    median,
    pair_ratios,
    ratio_line,  # fmt: skip
    reference_argv,
    timed,
    workflow_yaml,
)

HERE = Path(__file__).resolve().parent
REFERENCE_SH = HERE / "bench_reference.sh"
WORKFLOW_NAME = "bench"
SIDES = ("conductor", "shell", "python")


@dataclass
class Config:
    shape: str  # flat | dag
    deps: list[list[int]]
    concurrency: int
    command: str
    env: dict[str, str]
    keep: bool
    conductor: list[str]  # the command that runs conductor

    @property
    def tasks(self) -> int:
        return len(self.deps)


# ------------------------------------------------------------------ one measurement each


def measure_conductor(work: Path, cfg: Config) -> Sample:
    repo = make_repo(work / "conductor", cfg.env)
    (repo / "wf.yaml").write_text(
        workflow_yaml(WORKFLOW_NAME, cfg.command, cfg.concurrency, cfg.deps)
    )
    sample = timed([*cfg.conductor, "run", "wf.yaml"], repo, cfg.env, work / "conductor.log")
    check_merges(repo, f"conductor/{WORKFLOW_NAME}", cfg.tasks, cfg.env)
    return sample


def measure_shell(work: Path, cfg: Config) -> Sample:
    repo = make_repo(work / "shell", cfg.env)
    argv = ["bash", str(REFERENCE_SH), str(repo), str(cfg.tasks), str(cfg.concurrency)]
    argv += [cfg.command, *(map(str, layer_sizes(cfg.deps)) if cfg.shape == "dag" else ())]
    sample = timed(argv, repo, cfg.env, work / "shell.log")
    check_merges(repo, REF_BRANCH, cfg.tasks, cfg.env)
    return sample


def measure_python(work: Path, cfg: Config) -> Sample:
    repo = make_repo(work / "python", cfg.env)
    deps_file = work / "deps.json"
    deps_file.write_text(json.dumps(cfg.deps))
    argv = reference_argv(repo, deps_file, cfg.concurrency, cfg.command)
    sample = timed(argv, repo, cfg.env, work / "python.log")
    check_merges(repo, REF_BRANCH, cfg.tasks, cfg.env)
    return sample


MEASURE: dict[str, Callable[[Path, Config], Sample]] = {
    "conductor": measure_conductor, "shell": measure_shell, "python": measure_python,
}  # fmt: skip


def bench_shape(root: Path, cfg: Config, repeat: int) -> dict[str, list[Sample]]:
    def side(name: str) -> Callable[[int], Sample]:
        def measure(r: int) -> Sample:
            work = root / f"{cfg.shape}-{name}-{r}"
            work.mkdir(parents=True)
            sample = MEASURE[name](work, cfg)
            if not cfg.keep:
                shutil.rmtree(work)
            return sample

        return measure

    return alternate(repeat, {name: side(name) for name in SIDES}, f"{cfg.shape} ")


# ------------------------------------------------------------------ the report


def report(cfg: Config, results: dict[str, list[Sample]], max_ratio: float) -> float:
    """Print the tables and the ratio lines; return the ratio against the faster floor."""
    n = cfg.tasks
    ratios = {ref: pair_ratios(results["conductor"], results[ref]) for ref in SIDES[1:]}
    best = max(ratios, key=lambda ref: median(ratios[ref]))  # the faster floor: stricter
    ratio = median(ratios[best])
    ours = median([s.wall for s in results["conductor"]])
    ref = median([s.wall for s in results[best]])
    deps = sum(map(len, cfg.deps))
    print(f"\n### {cfg.shape}: {n} tasks `{cfg.command}`, {deps} dependencies, "
          f"concurrency {cfg.concurrency}, {os.cpu_count()} CPUs, "
          f"{len(results['conductor'])} rounds\n")  # fmt: skip
    print("| side | wall (median) | CPU user+sys (median) | CPU ms/task | tasks/s |")
    print("|---|---|---|---|---|")
    for side in SIDES:
        wall = median([s.wall for s in results[side]])
        cpu = median([s.cpu for s in results[side]])
        print(f"| {side} | {wall:.2f} s | {cpu:.2f} s | {cpu / n * 1000:.1f} | {n / wall:.1f} |")
    print(f"\noverhead per task against {best}: {(ours - ref) / n * 1000:+.1f} ms (medians)")
    for name in SIDES[1:]:
        print(f"  against {name}: " + " ".join(f"{r:.2f}x" for r in ratios[name])
              + f" (median {median(ratios[name]):.2f}x)")  # fmt: skip
    print(ratio_line(f"{cfg.shape} ({best} floor)", ratios[best], max_ratio))
    return ratio


# ------------------------------------------------------------------ main


def warm_up(root: Path, env: dict[str, str], conductor: list[str]) -> None:
    """One tiny run first: bytecode compiled and cached (under the temp home, as on an
    installed system), so no round pays for compiling conductor."""
    repo = make_repo(root / "warm-up", env)
    (repo / "wf.yaml").write_text(workflow_yaml("warm-up", "true", 2, flat_deps(2)))
    timed([*conductor, "run", "wf.yaml"], repo, env, root / "warm-up.log")
    shutil.rmtree(repo)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--layers", type=int, default=10, help="layers of the dag shape")
    ap.add_argument("--shapes", default="flat,dag", help="comma-separated: flat, dag")
    ap.add_argument("--repeat", type=int, default=5, help="rounds (pairs) per shape")
    ap.add_argument("--command", default="true", help="each task's shell command")
    ap.add_argument("--max-ratio", type=float, default=1.15)
    ap.add_argument("--keep", action="store_true", help="keep the temp repos for inspection")
    ap.add_argument(
        "--conductor",
        type=shlex.split,
        default=conductor_argv(),
        help="command that runs conductor, e.g. 'python -m conductor' (default: the venv's)",
    )
    args = ap.parse_args(argv)
    args.shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    if not args.shapes or set(args.shapes) - {"flat", "dag"}:
        ap.error("--shapes takes flat, dag or both")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_run."))
    print(f"working in {root}", file=sys.stderr)
    env = isolated_env(root / "home", bytecode_cache=True)
    worst = 0.0
    done = False
    try:
        warm_up(root, env, args.conductor)
        for shape in args.shapes:
            deps = flat_deps(args.tasks) if shape == "flat" else layered_deps(
                args.tasks, args.layers)  # fmt: skip
            cfg = Config(shape, deps, args.concurrency, args.command, env, args.keep,
                         args.conductor)  # fmt: skip
            worst = max(worst, report(cfg, bench_shape(root, cfg, args.repeat), args.max_ratio))
        done = True
    finally:
        if done and not args.keep:  # after a failure the logs stay for inspection
            shutil.rmtree(root, ignore_errors=True)
    ok = worst <= args.max_ratio
    print(f"\n{'target met' if ok else 'TARGET MISSED'}: worst ratio {worst:.2f}x "
          f"(max {args.max_ratio}x)")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
