#!/usr/bin/env python3
"""Benchmark: `conductor run` of N no-op shell tasks against the unavoidable work, by hand.

The workflow has N independent tasks `run: "true"` at concurrency C (default 200 and 8).
conductor runs it as a whole process (`conductor run wf.yaml`: start-up, store, report and
all). The references do, per task and C at a time, only what any "one worktree per task,
merged into an integration branch" runner must do: `git worktree add -b`, the command
through `bash -c`, `git add -A` + `git commit`, then one merge at a time (`merge-tree
--write-tree`, `commit-tree`, compare-and-swap `update-ref`) and `git worktree remove`.

* `shell`: scripts/bench_reference.sh (xargs -P, flock);
* `python`: the same git calls from C threads of one Python process, a lock around merges
  (no per-task bash, so usually the faster floor).

The ratio is taken against the faster of the two, every measurement in a fresh repository,
runs interleaved so that drift of the machine hits both sides alike; medians are reported.
Exit status 1 when the ratio is above --max-ratio (1.5).

    python scripts/bench_run.py [--tasks 200] [--concurrency 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCE_SH = HERE / "bench_reference.sh"
WORKFLOW_NAME = "bench"
REF_BRANCH = "bench-ref"


@dataclass
class Sample:
    wall: float  # seconds, the whole process
    cpu: float  # user + sys seconds of the process and everything it waited for


@dataclass
class Config:
    tasks: int
    concurrency: int
    command: str
    env: dict[str, str]
    keep: bool
    conductor: list[str]  # the command that runs conductor


# ------------------------------------------------------------------ environment and repos


def isolated_env(home: Path) -> dict[str, str]:
    """No user/system git config, hooks or templates; a fixed identity for every commit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "CONDUCTOR_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TEMPLATE_DIR="",
        GIT_AUTHOR_NAME="Bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="Bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
        # the venv first: conductor's own children must not go through a pyenv shim
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    return env


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def make_repo(path: Path, env: dict[str, str]) -> Path:
    """A repository on `main` with one commit, like a user's project (tiny)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main", env=env)
    (path / "README.md").write_text("bench\n")
    git(path, "add", "-A", env=env)
    git(path, "commit", "-q", "-m", "initial", env=env)
    return path


def workflow_text(cfg: Config) -> str:
    # JSON-style quoting is valid YAML for any command string.
    run = '"' + cfg.command.replace("\\", "\\\\").replace('"', '\\"') + '"'
    lines = ["version: 1", f"name: {WORKFLOW_NAME}", f"concurrency: {cfg.concurrency}", "tasks:"]
    lines += [f"  T{i}: {{run: {run}}}" for i in range(cfg.tasks)]
    return "\n".join(lines) + "\n"


def conductor_argv() -> list[str]:
    exe = Path(sys.executable).parent / "conductor"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "conductor"]


# ------------------------------------------------------------------ measuring


def timed(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> Sample:
    """Wall and CPU time of one whole process tree; its output goes to ``log``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(argv, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv[:3])} exited {proc.returncode}; see {log}")
    return Sample(wall, cpu)


def check_merges(repo: Path, branch: str, cfg: Config) -> None:
    """Both sides must really have done the work: one merge per task on the branch."""
    count = int(git(repo, "rev-list", "--merges", "--count", branch, env=cfg.env))
    if count != cfg.tasks:
        sys.exit(f"{repo}: {count} merges on {branch}, expected {cfg.tasks}")


def measure_conductor(work: Path, cfg: Config) -> Sample:
    repo = make_repo(work / "conductor", cfg.env)
    (repo / "wf.yaml").write_text(workflow_text(cfg))
    sample = timed([*cfg.conductor, "run", "wf.yaml"], repo, cfg.env, work / "conductor.log")
    check_merges(repo, f"conductor/{WORKFLOW_NAME}", cfg)
    return sample


def measure_shell(work: Path, cfg: Config) -> Sample:
    repo = make_repo(work / "shell", cfg.env)
    argv = ["bash", str(REFERENCE_SH), str(repo), str(cfg.tasks), str(cfg.concurrency)]
    sample = timed([*argv, cfg.command], repo, cfg.env, work / "shell.log")
    check_merges(repo, REF_BRANCH, cfg)
    return sample


def measure_python(work: Path, cfg: Config) -> Sample:
    repo = make_repo(work / "python", cfg.env)
    argv = [sys.executable, __file__, "--python-reference", str(repo)]
    argv += ["--tasks", str(cfg.tasks), "--concurrency", str(cfg.concurrency)]
    sample = timed([*argv, "--command", cfg.command], repo, cfg.env, work / "python.log")
    check_merges(repo, REF_BRANCH, cfg)
    return sample


# ------------------------------------------------------------------ the python reference


def python_reference(repo: Path, tasks: int, concurrency: int, command: str) -> None:
    """The by-hand work from ``concurrency`` threads; merges one at a time behind a lock."""
    repo = repo.resolve()
    (repo / ".ref" / "worktrees").mkdir(parents=True, exist_ok=True)
    common = git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")
    (Path(common) / "info").mkdir(exist_ok=True)
    with (Path(common) / "info" / "exclude").open("a") as fh:
        fh.write(".ref/\n")
    git(repo, "branch", REF_BRANCH, "HEAD")
    lock = threading.Lock()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(_ref_task, repo, i, command, lock) for i in range(tasks)]:
            future.result()


def _add_worktree(repo: Path, wt: Path, branch: str, start: str) -> None:
    """``git worktree add -b``; concurrent adds race (one may read another's half-written
    ``.git/worktrees/<id>``), so on failure clear the debris and retry, as conductor does."""
    argv = ["git", "worktree", "add", "-q", "-b", branch, str(wt), start]
    for _ in range(6):
        if subprocess.run(argv, cwd=repo, capture_output=True).returncode == 0:
            return
        shutil.rmtree(wt, ignore_errors=True)
        git(repo, "worktree", "prune")
        verify = ["git", "rev-parse", "-q", "--verify", f"refs/heads/{branch}"]
        known = subprocess.run(verify, cwd=repo, capture_output=True)
        if known.returncode == 0:
            argv = ["git", "worktree", "add", "-q", str(wt), branch]
    raise RuntimeError(f"git worktree add {wt} keeps failing")


def _ref_task(repo: Path, i: int, command: str, lock: threading.Lock) -> None:
    wt = repo / ".ref" / "worktrees" / f"T{i}"
    branch, ref = f"{REF_BRANCH}.attempts/T{i}/1", f"refs/heads/{REF_BRANCH}"
    _add_worktree(repo, wt, branch, ref)
    subprocess.run(["bash", "-c", command], cwd=wt, check=True)
    git(wt, "add", "-A")
    git(wt, "commit", "-q", "--allow-empty", "--no-verify", "-m", f"T{i} attempt 1")
    with lock:
        head = git(repo, "rev-parse", ref)
        tree = git(repo, "merge-tree", "--write-tree", head, branch)
        new = git(repo, "commit-tree", tree, "-p", head, "-p", branch, "-m", f"merge T{i}")
        git(repo, "update-ref", ref, new, head)
    remove = ["git", "worktree", "remove", "--force", str(wt)]
    for _ in range(5):  # the same race as in _add_worktree
        if subprocess.run(remove, cwd=repo, capture_output=True).returncode == 0:
            return
        time.sleep(0.01)
    git(repo, "worktree", "remove", "--force", str(wt))


# ------------------------------------------------------------------ the report


def median(samples: list[Sample], key: Callable[[Sample], float]) -> float:
    return statistics.median(key(s) for s in samples)


def report(cfg: Config, results: dict[str, list[Sample]]) -> float:
    """Print the markdown table; return the ratio against the faster reference."""
    n = cfg.tasks
    ours = median(results["conductor"], lambda s: s.wall)
    refs = {k: median(results[k], lambda s: s.wall) for k in ("shell", "python")}
    best = min(refs, key=lambda k: refs[k])
    ref = refs[best]
    ratio = ours / ref
    runs = len(results["conductor"])
    print(f"\n{n} tasks `{cfg.command}`, concurrency {cfg.concurrency}, {os.cpu_count()} CPUs;")
    print(f"median of {runs} runs each; ratio against the faster ({best}) reference.\n")
    print(
        "| tasks | conductor wall | reference wall | ratio | conductor tasks/s"
        " | reference tasks/s | overhead/task |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {n} | {ours:.2f} s | {ref:.2f} s ({best}) | {ratio:.2f}x | {n / ours:.1f}"
        f" | {n / ref:.1f} | {(ours - ref) / n * 1000:+.1f} ms |"
    )
    print()
    print("| side | wall (median) | CPU user+sys (median) | CPU ms/task |")
    print("|---|---|---|---|")
    for side in ("conductor", "shell", "python"):
        wall = median(results[side], lambda s: s.wall)
        cpu = median(results[side], lambda s: s.cpu)
        print(f"| {side} | {wall:.2f} s | {cpu:.2f} s | {cpu / n * 1000:.1f} |")
    return ratio


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3, help="measured runs per side (median)")
    ap.add_argument("--command", default="true", help="each task's shell command")
    ap.add_argument("--max-ratio", type=float, default=1.5)
    ap.add_argument("--keep", action="store_true", help="keep the temp repos for inspection")
    ap.add_argument(
        "--conductor",
        type=shlex.split,
        default=conductor_argv(),
        help="command that runs conductor, e.g. 'python -m conductor' (default: the venv's)",
    )
    ap.add_argument("--python-reference", metavar="REPO", type=Path, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.python_reference is not None:
        python_reference(args.python_reference, args.tasks, args.concurrency, args.command)
        return 0
    root = Path(tempfile.mkdtemp(prefix="bench_run."))
    print(f"working in {root}", file=sys.stderr)
    env = isolated_env(root / "home")
    cfg = Config(args.tasks, args.concurrency, args.command, env, args.keep, args.conductor)
    sides = {"conductor": measure_conductor, "shell": measure_shell, "python": measure_python}
    results: dict[str, list[Sample]] = {side: [] for side in sides}
    done = False
    try:
        for r in range(args.repeat):
            for side, measure in sides.items():
                work = root / f"{side}-{r}"
                work.mkdir(parents=True)
                results[side].append(measure(work, cfg))
                print(
                    f"run {r + 1} {side}: {results[side][-1].wall:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
                if not cfg.keep:
                    shutil.rmtree(work)
        ratio = report(cfg, results)
        done = True
    finally:
        if done and not cfg.keep:  # after a failure the logs stay for inspection
            shutil.rmtree(root, ignore_errors=True)
    ok = ratio <= args.max_ratio
    verdict = "target met" if ok else "TARGET MISSED"
    print(f"\n{verdict}: ratio {ratio:.2f}x (max {args.max_ratio}x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
