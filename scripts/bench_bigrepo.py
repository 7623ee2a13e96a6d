#!/usr/bin/env python3
"""Benchmark: conductor on a Django-sized repository against the fresh-worktree floor.

The repository: ~8,000 files (--files) of 1-6 KB in nested package directories, one
commit, packed; built once per (seed, files) and cached under the temp dir
(``conductor-bench-bigrepo/``), so repeated runs do not pay for it. Every measurement
gets its own copy (`cp -a`, the index refreshed, outside the timing), so each side
starts from a repository like a user's: files older than the index, nothing checked out
elsewhere.

conductor: `conductor run` of N (--tasks, 12) no-op tasks `run: "true"` one at a time
(concurrency 1; flat, or a chain with --shape chain), as a whole process. The floor does
by hand, per task, what a runner that makes a fresh worktree per task must do: `git
worktree add -b`, the command through `bash -c`, `git add -A`, `git commit`,
merge-tree/commit-tree/update-ref, `git worktree remove` (benchlib.by_hand).

Cold and warm. Each round copies the repository twice, one copy for each side, and
measures four runs: conductor's first run in its copy (**cold**: no worktree pool exists
yet, the first task pays a fresh worktree), the floor, then a second conductor run of
another workflow (same tasks, another name, so nothing is "up to date") in the same copy
(**warm**), then the floor again (another integration branch in its copy). **Steady
state** is the warm run: the repository has had an earlier conductor run at the same
concurrency, so its pool holds worktrees that survived it and every task may reuse one.
The target (--max-ratio, 0.3x) applies to the warm ratio; the cold one is reported. The
order flips every round (conductor first, then floor first); each ratio is the median of
the per-round (per-pair) ratios. Also reported: conductor's wall time per task and the
median attempt duration its store recorded. Exit status 1 when the warm ratio is above
--max-ratio.

    python scripts/bench_bigrepo.py [--files 8000] [--tasks 12] [--repeat 3] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    Sample,
    attempt_durations,
    check_merges,
    conductor_argv,
    flat_deps,
    git,
    isolated_env,
    make_repo,
    median,
    pair_ratios,
    ratio_line,
    reference_argv,  # fmt: skip
    timed,
    workflow_yaml,
)

LAYOUT = 2  # in the cache key: a repository built by an older version of this script is not reused
RUNS = {"cold": "bench-cold", "warm": "bench-warm"}  # conductor run -> workflow name
REFS = {"cold": "bench-ref-1", "warm": "bench-ref-2"}  # the floor's run -> its branch
WORDS = ("def", "class", "return", "self", "import", "from", "model", "field", "query",
         "request", "response", "value", "None", "True", "items", "config", "cache")  # fmt: skip


@dataclass
class Config:
    template: Path
    deps: list[list[int]]
    command: str
    env: dict[str, str]
    conductor: list[str]
    keep: bool

    @property
    def tasks(self) -> int:
        return len(self.deps)


# ------------------------------------------------------------------ the repository


def build_template(dest: Path, files: int, seed: int, env: dict[str, str]) -> None:
    """``files`` files in a tree like a web framework's: ~12 top packages, sub-packages
    two or three deep, ~15 files a directory, 1-6 KB each; one commit, packed."""
    rng = random.Random(seed)
    dirs = [Path(f"pkg{i}") for i in range(12)]
    while len(dirs) * 15 < files:
        parent = rng.choice([d for d in dirs if len(d.parts) < 4])
        dirs.append(parent / f"sub{len(dirs)}")
    for n in range(files):
        path = dest / rng.choice(dirs) / f"mod_{n}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        # words drawn anew for each file: files alike enough to compress, not to delta
        # against each other (slices of one text made every checkout a delta-chain walk)
        body = " ".join(rng.choices(WORDS, k=rng.randint(1000, 6000) // 6))
        path.write_text(f"# file {n}\n{body}\n")
    (dest / "README.md").write_text("bench\n")
    git(dest, "init", "-q", "-b", "main", env=env)
    git(dest, "add", "-A", env=env)
    # no background `gc --auto` after this big commit: it would hold gc's lock (and the
    # CPU) while the benchmark runs; one pack, as a clone would have
    git(dest, "-c", "gc.auto=0", "commit", "-q", "-m", "initial", env=env)
    git(dest, "repack", "-adq", env=env)
    git(dest, "prune-packed", env=env)


def template(cache: Path, files: int, seed: int, env: dict[str, str]) -> Path:
    """The cached repository for (seed, files), built on first use (beside, then renamed
    into place, so an interrupted or concurrent build never leaves a half one)."""
    final = cache / f"seed{seed}-files{files}-v{LAYOUT}"
    if (final / "done").exists():
        return final / "repo"
    building = cache / f"{final.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    (building / "repo").mkdir(parents=True)
    t0 = time.perf_counter()
    build_template(building / "repo", files, seed, env)
    (building / "done").write_text("")
    shutil.rmtree(final, ignore_errors=True)
    building.rename(final)
    print(f"built {final} ({files:,} files) in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)  # fmt: skip
    return final / "repo"


def copy_repo(cfg: Config, dest: Path) -> Path:
    """A copy of the template with its files' old times and an up-to-date index (the copy
    changed inodes and ctimes, which git would otherwise re-hash inside the timing)."""
    subprocess.run(["cp", "-a", str(cfg.template), str(dest)], check=True)
    git(dest, "update-index", "-q", "--refresh", env=cfg.env)
    git(dest, "status", "--porcelain", env=cfg.env)
    return dest


# ------------------------------------------------------------------ one round


def bench_round(work: Path, cfg: Config, r: int) -> dict[str, Sample]:
    ours = copy_repo(cfg, work / f"conductor-{r}")
    floor = copy_repo(cfg, work / f"floor-{r}")
    deps_file = work / "deps.json"
    deps_file.write_text(json.dumps(cfg.deps))
    for run, name in RUNS.items():
        (ours / f"wf-{run}.yaml").write_text(workflow_yaml(name, cfg.command, 1, cfg.deps))
    per_task: dict[str, list[float]] = {}

    def conductor(run: str) -> Sample:
        argv = [*cfg.conductor, "run", f"wf-{run}.yaml"]
        s = timed(argv, ours, cfg.env, work / f"conductor-{r}-{run}.log")
        check_merges(ours, f"conductor/{RUNS[run]}", cfg.tasks, cfg.env)
        per_task[run] = list(attempt_durations(ours).values())
        return s

    def by_hand(run: str) -> Sample:
        argv = reference_argv(floor, deps_file, 1, cfg.command, REFS[run])
        s = timed(argv, floor, cfg.env, work / f"floor-{r}-{run}.log")
        check_merges(floor, REFS[run], cfg.tasks, cfg.env)
        return s

    order = [conductor, by_hand] if r % 2 == 0 else [by_hand, conductor]
    out: dict[str, Sample] = {}
    for run in RUNS:  # cold first: the warm conductor run needs the cold one's pool
        for side in order:
            key = f"{'conductor' if side is conductor else 'floor'} {run}"
            out[key] = side(run)
            print(f"round {r + 1} {key}: {out[key].wall:.2f} s", file=sys.stderr, flush=True)
    for run, durations in per_task.items():
        out[f"attempt {run}"] = Sample(median(durations), 0.0)  # a median attempt, in wall
    if not cfg.keep:
        shutil.rmtree(ours)
        shutil.rmtree(floor)
    return out


# ------------------------------------------------------------------ the report


def report(cfg: Config, rounds: list[dict[str, Sample]], max_ratio: float) -> float:
    n = cfg.tasks
    print(f"\n{n} tasks `{cfg.command}` one at a time on {files_in(cfg.template):,} files "
          f"({cfg.template}), {os.cpu_count()} CPUs, {len(rounds)} rounds\n")  # fmt: skip
    print("| run | conductor wall | conductor per task | median attempt (store) "
          "| floor wall | floor per task | ratio (median of pairs) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    lines = []
    warm = 0.0
    for run in RUNS:
        ours = [x[f"conductor {run}"] for x in rounds]
        floor = [x[f"floor {run}"] for x in rounds]
        ratios = pair_ratios(ours, floor)
        att = median([x[f"attempt {run}"].wall for x in rounds])
        w_ours, w_floor = median([s.wall for s in ours]), median([s.wall for s in floor])
        print(f"| {run} | {w_ours:.2f} s | {w_ours / n * 1000:.0f} ms | {att * 1000:.0f} ms "
              f"| {w_floor:.2f} s | {w_floor / n * 1000:.0f} ms "
              f"| {median(ratios):.2f}x |")  # fmt: skip
        label = f"{run} ({'steady state, the target' if run == 'warm' else 'first run, info'})"
        lines.append(ratio_line(label, ratios, max_ratio))
        warm = median(ratios) if run == "warm" else warm
    print()
    print("\n".join(lines))
    return warm


def files_in(repo: Path) -> int:
    return int(subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True,
                              text=True, check=True).stdout.count("\n"))  # fmt: skip


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--files", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=1, help="which cached repository")
    ap.add_argument("--tasks", type=int, default=12)
    ap.add_argument("--shape", choices=("flat", "chain"), default="flat")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (pairs of each kind)")
    ap.add_argument("--command", default="true", help="each task's shell command")
    ap.add_argument("--max-ratio", type=float, default=0.3, help="target of the warm ratio")
    cache = Path(tempfile.gettempdir()) / "conductor-bench-bigrepo"
    ap.add_argument("--cache", type=Path, default=cache, help="where repositories are kept")
    ap.add_argument("--keep", action="store_true", help="keep the copies for inspection")
    ap.add_argument("--conductor", type=shlex.split, default=conductor_argv(),
                    help="command that runs conductor (default: the venv's)")  # fmt: skip
    return ap.parse_args(argv)


def warm_up(root: Path, cfg: Config) -> None:
    """One tiny run first: bytecode compiled and cached, as on an installed system."""
    repo = make_repo(root / "warm-up", cfg.env)
    (repo / "wf.yaml").write_text(workflow_yaml("warm-up", "true", 1, flat_deps(2)))
    timed([*cfg.conductor, "run", "wf.yaml"], repo, cfg.env, root / "warm-up.log")
    shutil.rmtree(repo)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_bigrepo.")).resolve()
    print(f"working in {root}", file=sys.stderr)
    env = isolated_env(root / "home", bytecode_cache=True)
    deps = flat_deps(args.tasks) if args.shape == "flat" else [
        [i - 1] if i else [] for i in range(args.tasks)]  # fmt: skip
    cfg = Config(template(args.cache, args.files, args.seed, env), deps, args.command, env,
                 args.conductor, args.keep)  # fmt: skip
    done = False
    try:
        warm_up(root, cfg)
        rounds = [bench_round(root, cfg, r) for r in range(args.repeat)]
        warm = report(cfg, rounds, args.max_ratio)
        done = True
    finally:
        if done and not args.keep:  # after a failure the logs stay for inspection
            shutil.rmtree(root, ignore_errors=True)
    ok = warm <= args.max_ratio
    print(f"\n{'target met' if ok else 'TARGET MISSED'}: steady-state ratio {warm:.2f}x "
          f"(max {args.max_ratio}x)")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
