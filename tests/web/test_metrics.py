"""/metrics against a known run, parsed with Prometheus' own text parser.

The run goes through the real engine, store and git with only the agents faked: they
print Claude Code's stream-json (cost, tokens, model), one fails once and is retried,
validators pass and fail, a failure blocks a dependent. Every figure is checked against
what that run must have recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="the web extra is not installed")

from prometheus_client.parser import text_string_to_metric_families

from conductor.exec.base import Request
from conductor.exec.fake import Reply
from conductor.spec.model import Group, Validator
from conductor.state.readonly import open_readonly
from conductor.web.metrics import text
from tests.run.test_spend_sums import claude_lines
from tests.testing.engine import start, task, task_of, workflow
from tests.testing.repos import make_repo
from tests.testing.runner import cli

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def agent(request: Request) -> Reply:
    tid = task_of(request)
    if tid is None:  # a validator: `check-bad` fails, everything else passes
        return Reply(exit_code=1 if "check-bad" in " ".join(request.argv) else 0)
    n = request.env["CONDUCTOR_ATTEMPT"]
    lines = claude_lines(tid, n)
    ok = '"is_error": false' in lines[1]
    return Reply(exit_code=0 if ok else 1, output=lines, files={f"{tid}.txt": f"{tid} {n}\n"})


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Samples, Path]:
    repo = make_repo(tmp_path_factory.mktemp("metrics") / "repo")
    ok, bad = Validator(kind="run", run="check-ok"), Validator(kind="run", run="check-bad")
    wf = workflow(repo, task("A", group="G", retries=1), task("B", group="G", validate=(ok,)),
                  task("C", validate=(bad,)), task("D", after=["C"]),
                  groups=[Group("G", "the group")])  # fmt: skip
    with start(wf, agent) as h:
        result = h.drive()
    assert result.states() == {"A": "succeeded", "B": "succeeded", "C": "failed",
                               "D": "blocked"}  # fmt: skip
    with open_readonly(repo / ".conductor" / "state.db") as store:
        body = text(store).decode()  # type: ignore[arg-type]
    return parse(body), repo


def parse(body: str) -> Samples:
    out: Samples = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out[s.name, frozenset(s.labels.items())] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def test_task_and_run_states_are_gauges(scraped: tuple[Samples, Path]) -> None:
    s, _ = scraped
    assert value(s, "conductor_runs", workflow="t", state="failed") == 1
    assert value(s, "conductor_runs", workflow="t", state="succeeded") == 0
    states = {"succeeded": 2, "failed": 1, "blocked": 1, "running": 0, "awaiting_approval": 0,
              "skipped": 0, "paused": 0, "pending": 0}  # fmt: skip
    for state, n in states.items():
        assert value(s, "conductor_tasks", workflow="t", state=state) == n, state


def test_transitions_retries_conflicts_and_validators_are_counters(
    scraped: tuple[Samples, Path],
) -> None:
    s, _ = scraped
    # A's first failure is retried (task_retrying), only C's is final (task_failed)
    moves = {"task_started": 4, "task_completed": 2, "task_failed": 1, "task_retrying": 1,
             "task_blocked": 1, "merged": 2}  # fmt: skip
    for event, n in moves.items():
        assert value(s, "conductor_task_transitions_total", workflow="t", event=event) == n
    assert value(s, "conductor_task_retries_total", workflow="t") == 1
    assert value(s, "conductor_merge_conflicts_total", workflow="t") == 0
    assert value(s, "conductor_validations_total", workflow="t", validator="run",
                 result="passed") == 1  # fmt: skip
    assert value(s, "conductor_validations_total", workflow="t", validator="run",
                 result="failed") == 1  # fmt: skip


def test_cost_and_tokens_by_agent_and_model(scraped: tuple[Samples, Path]) -> None:
    s, _ = scraped
    opus = {"workflow": "t", "agent": "fake", "model": "claude-opus-4"}
    sonnet = {"workflow": "t", "agent": "fake", "model": "claude-sonnet-4"}
    assert value(s, "conductor_agent_cost_usd_total", **opus) == pytest.approx(0.0031)
    # A's retry, B and C (C's agent succeeded; its validator failed)
    assert value(s, "conductor_agent_cost_usd_total", **sonnet) == pytest.approx(0.25092)
    assert value(s, "conductor_agent_tokens_total", **opus, type="input") == 1500
    assert value(s, "conductor_agent_tokens_total", **opus, type="cache") == 1000
    assert value(s, "conductor_agent_tokens_total", **sonnet, type="output") == 921
    assert value(s, "conductor_agent_turns_total", **sonnet) == 12


def test_durations_are_histograms_in_seconds(scraped: tuple[Samples, Path]) -> None:
    s, _ = scraped
    attempts = sum(v for (name, labels), v in s.items()
                   if name == "conductor_attempt_duration_seconds_count")  # fmt: skip
    assert attempts == 4  # A twice, B, C
    tasks = {dict(labels)["state"]: v for (name, labels), v in s.items()
             if name == "conductor_task_duration_seconds_count"}  # fmt: skip
    assert tasks == {"succeeded": 2, "failed": 1}  # D never started
    inf = value(s, "conductor_task_duration_seconds_bucket", workflow="t", state="succeeded",
                le="+Inf")  # fmt: skip
    assert inf == 2 and value(s, "conductor_task_duration_seconds_sum", workflow="t",
                              state="succeeded") >= 0  # fmt: skip


def test_pool_slots_and_no_task_ids_as_labels(scraped: tuple[Samples, Path]) -> None:
    s, _ = scraped
    # pools are a live run's: with nothing live, no pool has a slot to show
    assert not [name for name, _ in s if name.startswith("conductor_pool_slots")]
    labels: set[Any] = {v for (_, ls) in s for (_, v) in ls}
    assert not labels & {"A", "B", "C", "D"}
    assert all(name.startswith("conductor_") for name, _ in s)


def test_conductor_metrics_prints_the_same_once(scraped: tuple[Samples, Path]) -> None:
    s, repo = scraped
    proc = cli(repo, "metrics")
    assert proc.returncode == 0, proc.stderr
    printed = parse(proc.stdout)
    assert printed.keys() == s.keys()
    assert value(printed, "conductor_tasks", workflow="t", state="blocked") == 1
