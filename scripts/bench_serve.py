#!/usr/bin/env python3
"""Benchmark: does a page watching a run slow the run? `conductor run` of N no-op tasks,
alone and with `conductor serve` answering a page that follows the run.

"A page" does what the browser's script does: it reads the run's server-sent events from
the start to the end, and fetches the page's parts again every two seconds while the run
goes (the script's refresh rate). Both sides run the same workflow (bench_run.py's: N
independent `true` tasks at concurrency C) in a fresh repository each, as whole
processes; the runs are paired (with/without back to back, the order alternating) so
that drift of a shared machine hits both alike, and the ratio is the median of the
pairs' ratios. Exit status 1 when it is above --max-ratio (1.05).

    python scripts/bench_serve.py [--tasks 200] [--concurrency 8] [--pairs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_run  # the same repositories, workflow and timing

REFRESH_S = 2.0  # how often the page's script fetches the run's parts (static/app.js)


def start_server(repo: Path, cfg: bench_run.Config) -> tuple[subprocess.Popen[str], str]:
    """`conductor serve --port 0` on the repository's (empty) store; its base URL."""
    code = ("import sys, pathlib; from conductor.state.store import Store; "
            "Store(pathlib.Path(sys.argv[1])).close()")
    db = repo / ".conductor" / "state.db"
    subprocess.run([sys.executable, "-c", code, str(db)], check=True, env=cfg.env)
    proc = subprocess.Popen([*cfg.conductor, "serve", "--port", "0"], cwd=repo, env=cfg.env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"(http://\S+)", line)
    if not found:
        proc.kill()
        sys.exit(f"serve did not start: {line}{proc.communicate()[0]}")
    return proc, found.group(1)


def _newest_run(db: Path, deadline: float) -> str | None:
    while time.monotonic() < deadline:
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                row = con.execute("SELECT id FROM runs ORDER BY started DESC LIMIT 1").fetchone()
            finally:
                con.close()
            if row:
                return str(row[0])
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    return None


class Page:
    """A browser tab on the run: the event stream, and the parts fetched every two seconds."""

    def __init__(self, base: str, db: Path) -> None:
        self.base, self.db = base, db
        self.events = 0
        self.parts = 0
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _follow(self) -> None:
        run = _newest_run(self.db, time.monotonic() + 120)
        if run is None:
            return
        threading.Thread(target=self._refresh, args=(run,), daemon=True).start()
        with urllib.request.urlopen(f"{self.base}runs/{run}/events", timeout=300) as resp:
            for raw in resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("id: "):
                    self.events += 1
                elif line == "event: end":
                    break
        self.ended.set()

    def _refresh(self, run: str) -> None:
        while not self.ended.wait(REFRESH_S):
            try:
                with urllib.request.urlopen(f"{self.base}runs/{run}/parts", timeout=60) as r:
                    json.loads(r.read())
                    self.parts += 1
            except OSError:  # the server stopped with the run
                return


def cpu_of(pid: int) -> float:
    """User + system seconds a live process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(work: Path, cfg: bench_run.Config, watched: bool) -> tuple[float, float, float]:
    """The run's wall and CPU seconds, and what serving it cost (server + page CPU)."""
    repo = bench_run.make_repo(work / "repo", cfg.env)
    (repo / "wf.yaml").write_text(bench_run.workflow_text(cfg))
    server = page = None
    serving = 0.0
    if watched:
        server, base = start_server(repo, cfg)
        serving -= cpu_of(server.pid) + time.process_time()  # not its start-up
        page = Page(base, repo / ".conductor" / "state.db")
        page.start()
    try:
        sample = bench_run.timed([*cfg.conductor, "run", "wf.yaml"], repo, cfg.env,
                                 work / "run.log")
        if page is not None and not page.ended.wait(30):
            sys.exit("the page never saw the run end")
        if server is not None:
            serving += cpu_of(server.pid) + time.process_time()
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
    bench_run.check_merges(repo, f"conductor/{bench_run.WORKFLOW_NAME}", cfg)
    if page is not None and page.events < cfg.tasks:
        sys.exit(f"the page saw only {page.events} events")
    return sample.wall, sample.cpu, serving


Sample = tuple[float, float, float]  # wall s, run CPU s, serving CPU s


def run_pairs(cfg: bench_run.Config, n: int, root: Path) -> list[tuple[Sample, Sample]]:
    """(alone, with a page) ``n`` times, back to back, the order alternating."""
    pairs = []
    for i in range(n):
        order = (False, True) if i % 2 == 0 else (True, False)
        got: dict[bool, Sample] = {}
        for watched in order:
            work = root / f"{i}-{'page' if watched else 'alone'}"
            work.mkdir(parents=True)
            got[watched] = measure(work, cfg, watched)
            shutil.rmtree(work)
        alone, page = got[False], got[True]
        pairs.append((alone, page))
        print(f"pair {i + 1}: alone {alone[0]:.2f} s, with a page {page[0]:.2f} s "
              f"({page[0] / alone[0]:.3f}x); serving took {page[2]:.2f} s CPU "
              f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    return pairs


def report(cfg: bench_run.Config, pairs: list[tuple[Sample, Sample]], limit: float) -> float:
    ratio = statistics.median(w[0] / a[0] for a, w in pairs)
    alone = statistics.median(a[0] for a, _ in pairs)
    watched = statistics.median(w[0] for _, w in pairs)
    serving = statistics.median(w[2] for _, w in pairs)
    share = statistics.median(w[2] / w[1] for _, w in pairs)
    print(f"\n{cfg.tasks} no-op tasks, concurrency {cfg.concurrency}, {len(pairs)} pairs, "
          f"{os.cpu_count()} CPUs:\n")
    print("| tasks | alone | with a page connected | ratio (median of pairs) "
          "| serving CPU (server + page) | of the run's CPU | target |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {cfg.tasks} | {alone:.2f} s | {watched:.2f} s | {ratio:.3f}x | {serving:.2f} s "
          f"| {share:.1%} | <= {limit}x |")
    return ratio


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=5, help="paired runs (median of ratios)")
    ap.add_argument("--max-ratio", type=float, default=1.05)
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_serve."))
    env = bench_run.isolated_env(root / "home")
    cfg = bench_run.Config(args.tasks, args.concurrency, "true", env, False,
                           bench_run.conductor_argv())
    try:
        pairs = run_pairs(cfg, args.pairs, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratio = report(cfg, pairs, args.max_ratio)
    ok = ratio <= args.max_ratio
    print(f"\n{'target met' if ok else 'TARGET MISSED'}: {ratio:.3f}x (max {args.max_ratio}x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
