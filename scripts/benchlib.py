"""What the benchmarks in scripts/ share.

* a repository and its environment: an isolated git identity and config (`isolated_env`),
  one `git` helper, a one-commit repository (`make_repo`, `seed_repo`), the conductor
  command users start (`conductor_argv`);
* workflow shapes: flat, or layered like a real plan (`layered_deps`), as YAML;
* the by-hand floor (`by_hand`): what any "one worktree per task, merged into an
  integration branch" runner must do, from threads of one Python process, run as its own
  process (`reference_argv`) so it pays a start-up like conductor does;
* timing a whole process tree (`timed`) and pairing: the sides of a benchmark run
  alternately, A B A B (the order flipped every round), each in a fresh repository, and
  the figure is the median of the per-pair ratios, so one noisy run moves one ratio, not
  the whole result (`alternate`, `pair_ratios`, `ratio_line`);
* each attempt's duration as the store recorded it (`attempt_durations`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

REF_BRANCH = "bench-ref"

# ------------------------------------------------------------------ environment and repos


def isolated_env(home: Path, *, bytecode_cache: bool = False) -> dict[str, str]:
    """No user/system git config, hooks or templates; a fixed identity; this venv first
    (conductor's own children must not go through a pyenv shim).

    ``bytecode_cache``: cache bytecode under ``home`` (as on a user's machine, never in the
    source tree), even if PYTHONDONTWRITEBYTECODE is set; for start-up measurements, where
    recompiling conductor on every start would measure the compiler.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "CONDUCTOR_"))}
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(home / "pycache")
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TEMPLATE_DIR="",
        GIT_AUTHOR_NAME="Bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="Bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    return env


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:  # git's own words, not just an exit status
        raise RuntimeError(f"git {' '.join(args)} in {cwd}: {out.stderr.strip()}")
    return out.stdout.strip()


def make_repo(path: Path, env: dict[str, str]) -> Path:
    """A repository on `main` with one commit, like a user's project (tiny)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main", env=env)
    (path / "README.md").write_text("bench\n")
    git(path, "add", "-A", env=env)
    git(path, "commit", "-q", "-m", "initial", env=env)
    return path


def seed_repo(root: Path, workflow: str) -> Path:
    """``root/repo``: a git repository with one commit holding ``wf.yaml``."""
    repo = root / "repo"
    repo.mkdir()
    ident = ["-c", "user.name=b", "-c", "user.email=b@b"]
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("bench\n")
    (repo / "wf.yaml").write_text(workflow)
    git(repo, "add", "-A")
    git(repo, *ident, "commit", "-qm", "init")
    return repo


def conductor_argv() -> list[str]:
    """The installed console script, as users start it (`python -m` differs a bit)."""
    exe = Path(sys.executable).parent / "conductor"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "conductor"]


def check_merges(repo: Path, branch: str, expected: int, env: dict[str, str]) -> None:
    """A side must really have done the work: one merge per task on its branch."""
    count = int(git(repo, "rev-list", "--merges", "--count", branch, env=env))
    if count != expected:
        sys.exit(f"{repo}: {count} merges on {branch}, expected {expected}")


# ------------------------------------------------------------------ workflow shapes


def flat_deps(tasks: int) -> list[list[int]]:
    return [[] for _ in range(tasks)]


def layered_deps(tasks: int, layers: int = 10, fan: tuple[int, int] = (3, 5),
                 seed: int = 16) -> list[list[int]]:  # fmt: skip
    """``layers`` layers of about tasks/layers each; every task after the first layer
    depends on ``fan`` (3-5) tasks of the layer before (all of them if it is smaller)."""
    rng = random.Random(seed)
    layers = max(1, min(layers, tasks))
    layer_of = [i * layers // tasks for i in range(tasks)]
    members: list[list[int]] = [[] for _ in range(layers)]
    for i, layer in enumerate(layer_of):
        members[layer].append(i)
    deps: list[list[int]] = []
    for layer in layer_of:
        prev = members[layer - 1] if layer else []
        k = min(len(prev), rng.randint(*fan))
        deps.append(sorted(rng.sample(prev, k)))
    return deps


def layer_sizes(deps: Sequence[Sequence[int]]) -> list[int]:
    """Sizes of the topological levels, in order (tasks are numbered level by level)."""
    level: list[int] = []
    for d in deps:
        level.append(1 + max((level[j] for j in d), default=-1))
    return [level.count(n) for n in range(max(level, default=-1) + 1)]


def workflow_yaml(name: str, command: str, concurrency: int, deps: Sequence[Sequence[int]],
                  strategy: str = "eager", prefix: str = "T") -> str:  # fmt: skip
    """Tasks ``<prefix><i>: {run: command}`` with the given dependencies."""
    run = json.dumps(command)  # JSON quoting is valid YAML for any command string
    lines = [f"version: 1\nname: {name}\nconcurrency: {concurrency}\nstrategy: {strategy}"]
    lines.append("tasks:")
    for i, d in enumerate(deps):
        after = f", depends_on: [{', '.join(f'{prefix}{j}' for j in d)}]" if d else ""
        lines.append(f"  {prefix}{i}: {{run: {run}{after}}}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the by-hand floor


def reference_argv(repo: Path, deps_file: Path, concurrency: int, command: str,
                   branch: str = REF_BRANCH) -> list[str]:  # fmt: skip
    """The command that runs `by_hand` as a process of its own."""
    return [sys.executable, str(Path(__file__).resolve()), "--reference", str(repo),
            "--deps", str(deps_file), "--concurrency", str(concurrency),
            "--command", command, "--branch", branch]  # fmt: skip


def by_hand(repo: Path, deps: Sequence[Sequence[int]], concurrency: int, command: str,
            branch: str = REF_BRANCH) -> None:  # fmt: skip
    """Per task, ``concurrency`` at a time, in topological order as soon as its dependencies
    merged: `git worktree add -b` from the integration head, the command through `bash -c`,
    `git add -A` + `git commit`, one merge at a time behind a lock (`merge-tree
    --write-tree`, `commit-tree`, compare-and-swap `update-ref`), `git worktree remove`."""
    repo = repo.resolve()
    (repo / ".ref" / "worktrees").mkdir(parents=True, exist_ok=True)
    common = git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")
    (Path(common) / "info").mkdir(exist_ok=True)
    with (Path(common) / "info" / "exclude").open("a") as fh:
        fh.write(".ref/\n")
    git(repo, "branch", branch, "HEAD")
    waiting = [len(d) for d in deps]
    dependents: list[list[int]] = [[] for _ in deps]
    for i, d in enumerate(deps):
        for j in d:
            dependents[j].append(i)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    lock = threading.Lock()
    with ThreadPoolExecutor(concurrency) as pool:
        running: dict[Future[None], int] = {}
        while ready or running:
            while ready and len(running) < concurrency:
                i = ready.pop(0)
                running[pool.submit(_ref_task, repo, branch, i, command, lock)] = i
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
                for k in dependents[running.pop(future)]:
                    waiting[k] -= 1
                    if waiting[k] == 0:
                        ready.append(k)
            ready.sort()


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
        if subprocess.run(verify, cwd=repo, capture_output=True).returncode == 0:
            argv = ["git", "worktree", "add", "-q", str(wt), branch]
    raise RuntimeError(f"git worktree add {wt} keeps failing")


def _ref_task(repo: Path, integration: str, i: int, command: str, lock: threading.Lock) -> None:
    wt = repo / ".ref" / "worktrees" / f"{integration}-T{i}"
    branch, ref = f"{integration}.attempts/T{i}/1", f"refs/heads/{integration}"
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


# ------------------------------------------------------------------ timing and pairing


@dataclass
class Sample:
    wall: float  # seconds, the whole process
    cpu: float  # user + sys seconds of the process and what it waited for: steadier


def run_timed(argv: list[str], cwd: Path, env: dict[str, str],
              log: Path | None = None) -> tuple[Sample, str]:  # fmt: skip
    """Wall and CPU time of one whole process tree, and its stdout (into ``log`` instead
    when given); a failure stops the benchmark, naming where to look."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    if log is None:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    else:
        with log.open("w") as fh:
            proc = subprocess.run(argv, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        where = f"see {log}" if log else proc.stderr
        sys.exit(f"{' '.join(argv[:4])} exited {proc.returncode}: {where}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall, cpu), proc.stdout or ""


def timed(argv: list[str], cwd: Path, env: dict[str, str], log: Path | None = None) -> Sample:
    return run_timed(argv, cwd, env, log)[0]


def alternate(rounds: int, sides: dict[str, Callable[[int], Sample]],
              label: str = "") -> dict[str, list[Sample]]:  # fmt: skip
    """Each round measures every side once (``measure(round)``), in the given order on even
    rounds and reversed on odd ones, so neither side always goes first after a pause."""
    samples: dict[str, list[Sample]] = {side: [] for side in sides}
    names = list(sides)
    for r in range(rounds):
        for side in names if r % 2 == 0 else reversed(names):
            samples[side].append(sides[side](r))
            s = samples[side][-1]
            print(f"{label}round {r + 1} {side}: {s.wall:.2f} s (cpu {s.cpu:.2f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip
    return samples


def pair_ratios(ours: Sequence[Sample], ref: Sequence[Sample]) -> list[float]:
    """Wall-time ratio of each round's pair."""
    return [a.wall / b.wall for a, b in zip(ours, ref, strict=True)]


def ratio_line(label: str, ratios: Sequence[float], max_ratio: float) -> str:
    """``label: median of N per-pair ratios 1.10x (pairs 1.05x 1.2x ...), target <= ...``."""
    med = statistics.median(ratios)
    pairs = " ".join(f"{r:.2f}x" for r in ratios)
    verdict = "met" if med <= max_ratio else "MISSED"
    return (f"{label}: ratio {med:.2f}x, median of {len(ratios)} per-pair ratios "
            f"({pairs}); target <= {max_ratio}x {verdict}")  # fmt: skip


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# ------------------------------------------------------------------ the store


def attempt_durations(repo: Path, run_id: str | None = None) -> dict[str, float]:
    """Task id -> seconds its (last) attempt took, from the store; the newest run's when
    ``run_id`` is None and the store holds several."""
    con = sqlite3.connect(repo / ".conductor" / "state.db")
    try:
        if run_id is None:
            row = con.execute("SELECT id FROM runs ORDER BY started DESC LIMIT 1").fetchone()
            run_id = row[0] if row else ""
        rows = con.execute(
            "SELECT task_id, started, finished FROM attempts WHERE run_id = ? ORDER BY n",
            (run_id,),
        ).fetchall()
    finally:
        con.close()
    return {tid: float(end) - float(start) for tid, start, end in rows if end}


# ------------------------------------------------------------------ `benchlib.py --reference`


def _main() -> int:
    ap = argparse.ArgumentParser(description="the by-hand floor, as a process of its own")
    ap.add_argument("--reference", metavar="REPO", type=Path, required=True)
    ap.add_argument("--deps", type=Path, required=True, help="JSON: each task's dependencies")
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--command", default="true")
    ap.add_argument("--branch", default=REF_BRANCH)
    args = ap.parse_args()
    deps = json.loads(args.deps.read_text())
    by_hand(args.reference, deps, args.concurrency, args.command, args.branch)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
