"""What agents spend adds up (issue 11): a run through the real engine whose agents print
Claude Code's stream-json, with a task that fails once and is retried. Each attempt records
its cost, tokens (cache too), turns, session and model; the task's sum counts the failed
attempt; groups and the run are summed in `status --json`, `export` and the execution log;
a `task_usage` event per attempt feeds the live view."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from conductor.exec.base import Request
from conductor.exec.fake import Reply
from conductor.ops.export import export_record
from conductor.report.log import render
from conductor.report.status import status_doc
from conductor.spec.model import Group
from tests.testing.engine import EngineResult, start, task, task_of, workflow
from tests.testing.repos import make_repo

# (model, cost, input tokens of which cache read, cache read, output tokens, turns, ok)
SPENT = {
    ("A", "1"): ("claude-opus-4", 0.0031, 1500, 1000, 40, 3, False),  # fails: retried
    ("A", "2"): ("claude-sonnet-4", 0.0009, 700, 500, 20, 2, True),
    ("B", "1"): ("claude-sonnet-4", 0.25, 10000, 0, 900, 9, True),
    ("C", "1"): ("claude-sonnet-4", 0.00002, 10, 0, 1, 1, True),
}


def claude_lines(tid: str, n: str) -> list[str]:
    model, cost, t_in, cached, t_out, turns, ok = SPENT[tid, n]
    init = {"type": "system", "subtype": "init", "session_id": f"s-{tid}-{n}", "model": model}
    result: dict[str, Any] = {"type": "result", "subtype": "success" if ok else "error_during_execution",
              "is_error": not ok, "num_turns": turns, "session_id": f"s-{tid}-{n}",
              "total_cost_usd": cost, "usage": {"input_tokens": t_in - cached,
              "cache_read_input_tokens": cached, "output_tokens": t_out}}  # fmt: skip
    result |= {"result": "done"} if ok else {"errors": ["the tests are red"]}
    return [json.dumps(init), json.dumps(result)]


def agent(request: Request) -> Reply:
    tid = task_of(request)
    if tid is None:
        return Reply()
    n = request.env["CONDUCTOR_ATTEMPT"]
    ok = SPENT[tid, n][-1]
    return Reply(exit_code=0 if ok else 1, output=claude_lines(tid, n),
                 files={f"{tid}.txt": f"{tid} {n}\n"})  # fmt: skip


@dataclass
class Ran:
    result: EngineResult
    doc: dict[str, Any]  # status --json
    export: dict[str, Any]  # export --format json
    log: str  # the execution log


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """One run, looked at by every test here (a run costs most of a second)."""
    repo = make_repo(tmp_path_factory.mktemp("spend") / "repo")
    wf = workflow(repo, task("A", group="G", retries=1), task("B", group="G"), task("C"),
                  groups=[Group("G", "the group")])  # fmt: skip
    with start(wf, agent) as h:
        result = h.drive()
        row = h.store.run(h.run_id)
        assert row is not None and result.state == "succeeded", result.tasks
        return Ran(result, status_doc(h.store, row), export_record(h.store, h.run_id, h.ws.state_dir),
                   render(h.store, h.run_id, wf))  # fmt: skip


def test_each_attempt_records_what_its_agent_reported(ran: Ran) -> None:
    a1, a2 = ran.result.attempts["A"]
    assert a1["state"] == "failed" and a2["state"] == "succeeded"
    got = [(a["cost_usd"], a["tokens_in"], a["tokens_out"], a["tokens_cache"], a["turns"],
            a["model"], a["session_id"]) for a in (a1, a2)]  # fmt: skip
    assert got == [(0.0031, 1500, 40, 1000, 3, "claude-opus-4", "s-A-1"),
                   (0.0009, 700, 20, 500, 2, "claude-sonnet-4", "s-A-2")]  # fmt: skip
    usage = [(e["task_id"], e["data"]["attempt"], e["data"]["turns"])
             for e in ran.result.events_of("task_usage")]  # fmt: skip
    assert sorted(usage) == [("A", 1, 3), ("A", 2, 2), ("B", 1, 9), ("C", 1, 1)]


def test_status_json_sums_per_task_failed_attempt_included_per_group_and_run(
    ran: Ran,
) -> None:
    doc = ran.doc
    tasks = {t["id"]: t for t in doc["tasks"]}
    a = tasks["A"]
    assert a["cost_usd"] == pytest.approx(0.004)  # $0.0031 of the failed attempt + $0.0009
    assert (a["tokens_in"], a["tokens_out"], a["tokens_cache"], a["turns"]) == (2200, 60, 1500, 5)
    assert a["models"] == ["claude-opus-4", "claude-sonnet-4"]  # in attempt order
    (g,) = doc["groups"]
    assert (g["id"], g["tasks"], g["counts"]) == ("G", 2, {"succeeded": 2})
    assert g["cost_usd"] == pytest.approx(0.254)
    assert (g["tokens_in"], g["tokens_out"], g["tokens_cache"], g["turns"]) == (12200, 960, 1500, 14)
    run = doc["run"]
    assert run["cost_usd"] == pytest.approx(0.25402)
    assert (run["tokens_in"], run["tokens_out"], run["tokens_cache"], run["turns"]) == (
        12210, 961, 1500, 15)  # fmt: skip
    assert run["models"] == ["claude-opus-4", "claude-sonnet-4"]


def test_export_carries_attempt_fields_and_the_same_sums(ran: Ran) -> None:
    exp, doc = ran.export, ran.doc
    first = next(x for x in exp["attempts"] if (x["task_id"], x["n"]) == ("A", 1))
    assert (first["tokens_cache"], first["turns"], first["model"]) == (1000, 3, "claude-opus-4")
    keys = ("cost_usd", "tokens_in", "tokens_out", "tokens_cache", "turns", "models")
    by_id = {t["id"]: t for t in doc["tasks"]}
    for t in exp["tasks"]:
        assert {k: t[k] for k in keys} == {k: by_id[t["task_id"]][k] for k in keys}
    assert exp["groups"] == doc["groups"]
    assert {k: exp["run"][k] for k in keys} == {k: doc["run"][k] for k in keys}
    json.dumps(exp)  # still one JSON document


def test_the_log_shows_task_cells_group_and_run_totals(ran: Ran) -> None:
    log = ran.log
    row_a = next(line for line in log.splitlines() if line.startswith("| **A** |"))
    assert "| $0.004 | 2,200 in (1,500 cached) · 60 out | 5 |" in row_a
    row_c = next(line for line in log.splitlines() if line.startswith("| **C** |"))
    assert "| $2.0e-05 |" in row_c  # a fiftieth of a cent is not $0.00
    assert ("**G total:** $0.25 · 12,200 in (1,500 cached) · 960 out · 14 turns · "
            "claude-opus-4, claude-sonnet-4") in log  # fmt: skip
    assert "**Run total:** $0.25 · 12,210 in (1,500 cached) · 961 out · 15 turns" in log
    assert "| Turns | 15 |" in log and "| Cost | $0.25 (4 of 4 attempts reported one) |" in log
