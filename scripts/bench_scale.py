#!/usr/bin/env python3
"""Benchmark: the runner's CPU per task at 1,000, 5,000 and 10,000 no-op tasks.

What grows with the number of tasks is the runner's own bookkeeping (the scheduler, the
queue announcements, the store's rows), not the agents: so every attempt here is a no-op
that succeeds at once (no git, no process, no thread), and what is measured is the CPU
time of this process (``time.process_time``, user + system; not wall time, so a busy
neighbour on a shared machine moves it little) spent in ``Runner.run`` over a real
SQLite store, divided by the number of tasks. The engine's loop, scheduler, conditions,
quotas, deadlock watchdog and events are the real ones; only ``Attempt.run`` is skipped.

Target: the per-task CPU at 10,000 tasks within 1.2x of that at 1,000 (exit 1 if not).
Each size runs ``--repeat`` times, sizes interleaved, and its figure is its best round
(noise on a shared machine only adds CPU). Also the execution log's render time at each
size (median; the run's store, after the run: what the live log re-renders every 2 s).

    python scripts/bench_scale.py                  # flat, 1,000 / 5,000 / 10,000 tasks
    python scripts/bench_scale.py --shape dag      # 10 layers, 3-5 deps each (benchlib)
    python scripts/bench_scale.py --sizes 1000,10000 --concurrency 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from benchlib import layered_deps

from conductor.plan.planner import make_plan, remaining_path_hours
from conductor.plan.scopes import overlap
from conductor.report.log import render
from conductor.run.attempt import Attempt
from conductor.run.context import RunContext
from conductor.run.engine import Runner
from conductor.run.outcome import Outcome
from conductor.run.scheduler import Scheduler
from conductor.spec.config import RunSettings
from conductor.spec.model import AgentProfile, Task, Workflow
from conductor.spec.secrets import Secrets
from conductor.state.events import Emitter
from conductor.state.store import Store

TARGET = 1.2
PROFILE = AgentProfile(name="noop", command=("true",))
SETTINGS = RunSettings(retry_backoff_s=0.0, min_free_memory_mb=0.0, min_free_disk_mb=0.0)


def workflow(n: int, shape: str) -> Workflow:
    """``n`` tasks, flat or layered like bench_run's DAG (benchlib.layered_deps: 10
    layers, each task after 3-5 of the layer before)."""
    links = layered_deps(n) if shape == "dag" else [[] for _ in range(n)]
    tasks: dict[str, Task] = {}
    for i, after in enumerate(links):
        deps = tuple(f"t{j}" for j in after)
        tasks[f"t{i}"] = Task(id=f"t{i}", prompt="noop", agent=PROFILE.name, retries=0,
                              depends_on=deps, deps=deps)  # fmt: skip
    return Workflow(path=Path("/nowhere/wf.yaml"), name="scale", tasks=tasks,
                    integration_branch="conductor/scale",
                    agents={PROFILE.name: PROFILE})  # fmt: skip


class NoopRunner(Runner):
    """The real runner; an attempt succeeds the moment it starts, on the loop's thread."""

    def _spawn(self, fn: object, name: str) -> None:
        assert callable(fn)
        fn()

    def _attempt_worker(self, attempt: Attempt) -> None:
        self.done.put(Outcome(attempt.tid, attempt.n, True))


def run_once(n: int, shape: str, concurrency: int, tmp: Path) -> tuple[float, float, str]:
    """(CPU seconds of the run, seconds to render its log, final state)."""
    wf = workflow(n, shape)
    plan = make_plan(wf)
    tmp.mkdir(parents=True, exist_ok=True)
    store = Store(tmp / f"state-{shape}-{n}.db")
    run_id = f"r{n}"
    store.create_run(run_id, "wf.yaml", wf.name, wf.integration_branch, {},
                     [(t, None, PROFILE.name, "pending", "") for t in plan.selected])  # fmt: skip
    ws: Any = SimpleNamespace(state_dir=tmp, root=tmp)  # no repository: nothing touches git
    ctx = RunContext(wf, ws, store, run_id, Secrets({}), Emitter(store, run_id),
                     settings=SETTINGS, base_env={})  # fmt: skip
    sched = Scheduler(wf, plan.selected, {t: plan.wave_of(t) for t in plan.selected},
                      remaining_path_hours(plan), strategy=wf.strategy,
                      concurrency=concurrency, overlap=overlap)  # fmt: skip
    runner = NoopRunner(ctx, sched)
    t0 = time.process_time()
    state = runner.run()
    cpu = time.process_time() - t0
    r0 = time.perf_counter()
    render(store, run_id, wf)
    rendered = time.perf_counter() - r0
    store.close()
    return cpu, rendered, state


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,5000,10000")
    ap.add_argument("--shape", choices=("flat", "dag"), default="flat")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds over all sizes; each size's figure is its best round",
    )
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    cpus: dict[int, list[float]] = {n: [] for n in sizes}
    renders: dict[int, list[float]] = {n: [] for n in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):  # sizes interleaved: a noisy spell hits them all
            for n in sizes:
                cpu, rendered, state = run_once(n, args.shape, args.concurrency,
                                                Path(tmp) / f"{r}")  # fmt: skip
                assert state == "succeeded", state
                cpus[n].append(cpu / n)
                renders[n].append(rendered)
    # the least CPU a round took: noise (a busy neighbour, a cold cache) only adds
    per_task = {n: min(v) for n, v in cpus.items()}
    for n in sizes:
        render_ms = statistics.median(renders[n]) * 1e3
        print(f"{args.shape} {n:>6} tasks: runner CPU {per_task[n] * 1e3:6.3f} ms/task "
              f"(best of {args.repeat}); log render {render_ms:7.1f} ms")  # fmt: skip
    lo, hi = min(sizes), max(sizes)
    if lo == hi:
        return 0
    ratio = per_task[hi] / per_task[lo]
    verdict = "OK" if ratio <= TARGET else "SLOW"
    print(f"CPU per task at {hi:,} / at {lo:,}: {ratio:.2f}x (target <= {TARGET}x) {verdict}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
