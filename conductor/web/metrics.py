"""Prometheus metrics, read from the store at scrape time by one custom collector.

Nothing is counted in memory: every scrape sums the store (a handful of GROUP BY
queries), so `/metrics` of a server started an hour ago, `conductor metrics` run once
for a textfile collector, and a runner on another machine's NFS all agree, and a
restart loses nothing. Counters only grow because the store only grows (events and
attempts are never rewritten). Labels are bounded: the workflow's name, states, event
kinds, agents, models and validator kinds; never a task or run id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from conductor.report.poolreport import pools_doc
from conductor.state.liveness import is_live, shown_task_state
from conductor.state.readonly import ReadOnlyStore
from conductor.state.records import RunRow
from conductor.state.states import RUN_LIVE
from conductor.web.markup import STATES

# Agents take minutes to hours; no-op tasks well under a second: both ends resolve.
BUCKETS = (0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
TRANSITIONS = ("task_queued", "task_started", "task_completed", "task_failed", "task_retrying",
               "task_paused", "task_blocked", "task_cancelled", "task_skipped",
               "task_awaiting_approval", "task_approved", "task_rejected", "merged",
               "rolled_back")  # fmt: skip
RUN_STATES = ("running", "cancelling", "succeeded", "failed", "cancelled", "interrupted")


def _marks(n: int) -> str:
    return ", ".join("?" for _ in range(n))


def histogram(name: str, doc: str, labels: list[str],
              samples: Iterable[tuple[tuple[str, ...], float]]) -> HistogramMetricFamily:
    """A histogram family from (label values, observation) pairs."""
    by: dict[tuple[str, ...], list[float]] = {}
    for key, value in samples:
        by.setdefault(key, []).append(max(0.0, value))
    fam = HistogramMetricFamily(name, doc, labels=labels)
    for key, values in sorted(by.items()):
        cumulative = [(str(float(b)), float(sum(1 for v in values if v <= b))) for b in BUCKETS]
        fam.add_metric(list(key), [*cumulative, ("+Inf", float(len(values)))], sum(values))
    return fam


class StoreCollector(Collector):
    """Every `conductor_*` metric, from one read-only store."""

    def __init__(self, store: ReadOnlyStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        runs = self.store.select("SELECT * FROM runs")
        shown = {r["id"]: self._shown(r) for r in runs}  # type: ignore[arg-type]
        yield self._runs(runs, shown)
        yield self._tasks(runs, shown)
        yield from self._events(sorted({r["name"] for r in runs}))
        yield from self._durations()
        yield from self._spend()
        yield from self._pool(runs, shown)

    def _shown(self, run: RunRow) -> str:
        if run["state"] in RUN_LIVE and not is_live(self.store.path.parent, run):
            return "interrupted"
        return str(run["state"])

    def _runs(self, runs: list[dict[str, Any]], shown: dict[str, str]) -> Metric:
        fam = GaugeMetricFamily("conductor_runs", "Runs recorded in the store, by state.",
                                labels=["workflow", "state"])  # fmt: skip
        for name in sorted({r["name"] for r in runs}):
            for state in dict.fromkeys([*RUN_STATES, *shown.values()]):
                n = sum(1 for r in runs if r["name"] == name and shown[r["id"]] == state)
                fam.add_metric([name, state], n)
        return fam

    def _tasks(self, runs: list[dict[str, Any]], shown: dict[str, str]) -> Metric:
        """Task states in each workflow's newest run: where that workflow stands now."""
        fam = GaugeMetricFamily("conductor_tasks", "Tasks of each workflow's newest run, "
                                "by state.", labels=["workflow", "state"])  # fmt: skip
        newest: dict[str, dict[str, Any]] = {}
        for r in runs:
            if r["name"] not in newest or r["started"] > newest[r["name"]]["started"]:
                newest[r["name"]] = r
        for name, run in sorted(newest.items()):
            counts = dict.fromkeys(STATES, 0)
            for row in self.store.select("SELECT state, COUNT(*) AS n FROM tasks WHERE "
                                         "run_id = ? GROUP BY state", (run["id"],)):  # fmt: skip
                state = shown_task_state(shown[run["id"]], row["state"])
                counts[state] = counts.get(state, 0) + int(row["n"])
            for state, n in counts.items():
                fam.add_metric([name, state], n)
        return fam

    def _events(self, workflows: list[str]) -> Iterator[Metric]:
        kinds = (*TRANSITIONS, "conflict", "validation_passed", "validation_failed")
        rows = self.store.select(
            "SELECT r.name AS workflow, e.kind AS kind, json_extract(e.data, '$.check') AS "
            "chk, json_extract(e.data, '$.agent') AS agent, COUNT(*) AS n FROM events e "
            f"JOIN runs r ON r.id = e.run_id WHERE e.kind IN ({_marks(len(kinds))}) "
            "GROUP BY 1, 2, 3, 4", kinds,
        )  # fmt: skip
        moves = CounterMetricFamily("conductor_task_transitions", "Task state transitions, "
                                    "by the event that recorded them.",
                                    labels=["workflow", "event"])  # fmt: skip
        checks = CounterMetricFamily("conductor_validations", "Validator results, by the "
                                     "validator's kind.",
                                     labels=["workflow", "validator", "result"])  # fmt: skip
        conflicts = CounterMetricFamily("conductor_merge_conflicts", "Merges that conflicted.",
                                        labels=["workflow"])  # fmt: skip
        retries = CounterMetricFamily("conductor_task_retries", "Attempts retried.",
                                      labels=["workflow"])  # fmt: skip
        pauses = CounterMetricFamily("conductor_task_pauses", "Tasks paused by an agent's "
                                     "usage limit.", labels=["workflow", "agent"])  # fmt: skip
        # every workflow has these series from its first run on: rate() needs the zero
        sums: dict[tuple[Any, ...], float] = {
            (what, wf): 0 for wf in workflows for what in ("conflicts", "retries")}
        for r in rows:
            for key in self._keys(r):
                sums[key] = sums.get(key, 0) + r["n"]
        targets = {"moves": moves, "checks": checks, "conflicts": conflicts,
                   "retries": retries, "pauses": pauses}  # fmt: skip
        for (what, *labels), n in sorted(sums.items()):
            targets[what].add_metric(labels, n)
        yield from targets.values()

    @staticmethod
    def _keys(r: dict[str, Any]) -> list[tuple[str, ...]]:
        wf, kind = r["workflow"], r["kind"]
        keys: list[tuple[str, ...]] = []
        if kind in TRANSITIONS:
            keys.append(("moves", wf, kind))
        if kind.startswith("validation_"):
            validator = str(r["chk"] or "unknown").split(":", 1)[0].strip()
            keys.append(("checks", wf, validator, kind.removeprefix("validation_")))
        if kind == "conflict":
            keys.append(("conflicts", wf))
        if kind == "task_retrying":
            keys.append(("retries", wf))
        if kind == "task_paused":
            keys.append(("pauses", wf, str(r["agent"] or "unknown")))
        return keys

    def _durations(self) -> Iterator[Metric]:
        tasks = self.store.select(
            "SELECT r.name AS workflow, t.state AS state, t.finished - t.started AS s "
            "FROM tasks t JOIN runs r ON r.id = t.run_id WHERE t.finished IS NOT NULL "
            "AND t.started IS NOT NULL")  # fmt: skip
        yield histogram("conductor_task_duration_seconds", "Finished tasks, first attempt's "
                        "start to the end, by final state.", ["workflow", "state"],
                        (((r["workflow"], r["state"]), r["s"]) for r in tasks))  # fmt: skip
        atts = self.store.select(
            "SELECT r.name AS workflow, COALESCE(t.agent, '') AS agent, a.state AS state, "
            "a.finished - a.started AS s FROM attempts a JOIN tasks t ON t.run_id = a.run_id "
            "AND t.task_id = a.task_id JOIN runs r ON r.id = a.run_id "
            "WHERE a.finished IS NOT NULL")  # fmt: skip
        yield histogram("conductor_attempt_duration_seconds", "Finished attempts, by agent "
                        "and outcome.", ["workflow", "agent", "state"],
                        (((r["workflow"], r["agent"], r["state"]), r["s"]) for r in atts))

    def _spend(self) -> Iterator[Metric]:
        rows = self.store.select(
            "SELECT r.name AS workflow, COALESCE(t.agent, '') AS agent, "
            "COALESCE(a.model, 'unknown') AS model, SUM(a.cost_usd) AS cost, "
            "SUM(a.tokens_in) AS tin, SUM(a.tokens_out) AS tout, SUM(a.tokens_cache) AS tcache, "
            "SUM(a.turns) AS turns FROM attempts a JOIN tasks t ON t.run_id = a.run_id AND "
            "t.task_id = a.task_id JOIN runs r ON r.id = a.run_id GROUP BY 1, 2, 3")  # fmt: skip
        labels = ["workflow", "agent", "model"]
        cost = CounterMetricFamily("conductor_agent_cost_usd", "What agents reported "
                                   "spending, in US dollars.", labels=labels)  # fmt: skip
        tokens = CounterMetricFamily("conductor_agent_tokens", "Tokens agents reported; input "
                                     "includes cached input.", labels=[*labels, "type"])
        turns = CounterMetricFamily("conductor_agent_turns", "Turns agents reported.",
                                    labels=labels)  # fmt: skip
        for r in rows:
            key = [r["workflow"], r["agent"], r["model"]]
            if r["cost"] is not None:
                cost.add_metric(key, float(r["cost"]))
            for kind, col in (("input", "tin"), ("output", "tout"), ("cache", "tcache")):
                if r[col] is not None:
                    tokens.add_metric([*key, kind], float(r[col]))
            if r["turns"] is not None:
                turns.add_metric(key, float(r["turns"]))
        yield from (cost, tokens, turns)

    def _pool(self, runs: list[dict[str, Any]], shown: dict[str, str]) -> Iterator[Metric]:
        """Each pool's slots used and free, summed over the live runs (the same numbers
        `status --json` shows under `pools`); a pool without a slot cap shows no `free`."""
        used: dict[str, float] = {}
        free: dict[str, float] = {}
        for r in runs:
            if shown[r["id"]] not in RUN_LIVE:
                continue
            tasks = self.store.select("SELECT * FROM tasks WHERE run_id = ?", (r["id"],))
            tries = self.store.select("SELECT * FROM attempts WHERE run_id = ?", (r["id"],))
            for pool in pools_doc(r, tasks, tries):  # type: ignore[arg-type]
                used[pool["name"]] = used.get(pool["name"], 0) + pool["used"]
                if pool["free"] is not None:
                    free[pool["name"]] = free.get(pool["name"], 0) + pool["free"]
        for name, values in (("used", used), ("free", free)):
            fam = GaugeMetricFamily(f"conductor_pool_slots_{name}", f"Slots of a pool {name} "
                                    "by live runs.", labels=["pool"])  # fmt: skip
            for pool_name, value in sorted(values.items()):
                fam.add_metric([pool_name], value)
            yield fam


def registry(store: ReadOnlyStore) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(store))
    return reg


def text(store: ReadOnlyStore) -> bytes:
    """The metrics in Prometheus' text format, as a scrape (or a textfile) wants them."""
    from prometheus_client import generate_latest

    return generate_latest(registry(store))
