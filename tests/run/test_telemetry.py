"""What agents report adds up (issue 11, in part): cost and tokens summed over every
attempt, sub-cent costs that do not read $0.00, and a task's last progress step kept."""

from __future__ import annotations

from pathlib import Path

from conductor.report.rundata import fmt_usd
from conductor.report.status import status_doc
from conductor.state.store import open_store
from tests.testing.engine import start, task, workflow

RUN = "20260101-000000-abcd"


def test_status_sums_cost_and_tokens_over_every_attempt_failed_ones_too(tmp_path: Path) -> None:
    with open_store(tmp_path / ".conductor") as store:
        store.create_run(RUN, "wf.yaml", "wf", "conductor/wf", {},
                         [("A", None, "claude", "pending", "h"), ("B", None, "claude", "pending", "h"),
                          ("C", None, "sh", "pending", "h")])  # fmt: skip
        store.add_attempt(RUN, "A", 1, state="failed", cost_usd=0.01, tokens_in=100, tokens_out=10)
        store.add_attempt(RUN, "A", 2, state="succeeded", cost_usd=0.02, tokens_in=200,
                          tokens_out=20)  # fmt: skip
        store.update_task(RUN, "A", state="succeeded", cost_usd=0.02)  # the engine's value
        store.add_attempt(RUN, "B", 1, state="failed", cost_usd=0.004)
        store.update_task(RUN, "B", state="failed")
        store.add_attempt(RUN, "C", 1, state="succeeded")  # a shell task reports nothing
        run = store.run(RUN)
        assert run is not None
        doc = status_doc(store, run)
    tasks = {t["id"]: t for t in doc["tasks"]}
    assert (tasks["A"]["cost_usd"], tasks["A"]["tokens_in"], tasks["A"]["tokens_out"]) == (
        0.03, 300, 30)  # fmt: skip
    assert tasks["B"]["cost_usd"] == 0.004  # a failed task's spend is not null
    assert (tasks["C"]["cost_usd"], tasks["C"]["tokens_in"]) == (None, None)
    assert round(doc["run"]["cost_usd"], 6) == 0.034
    assert (doc["run"]["tokens_in"], doc["run"]["tokens_out"]) == (300, 30)


def test_costs_under_a_cent_keep_their_digits() -> None:
    assert fmt_usd(0.0042) == "$0.0042"
    assert fmt_usd(0.00001) == "$1.0e-05"
    assert fmt_usd(1.5) == "$1.50" and fmt_usd(0) == "$0.00"


def test_the_last_progress_step_is_recorded_though_the_throttle_held_it(repo: Path) -> None:
    with start(workflow(repo, task("A"))) as h:
        h.ctx.progress("A", "reading the code")
        h.ctx.progress("A", "running the tests")  # within the throttle window: held
        step = h.store.task(h.run_id, "A")
        assert step is not None and step["step"] == "reading the code"
        h.ctx.release("A")  # the attempt ends
        row = h.store.task(h.run_id, "A")
        assert row is not None and row["step"] == "running the tests"
        steps = [e["data"]["step"] for e in h.store.events(h.run_id) if e["kind"] == "task_progress"]
        assert steps == ["reading the code", "running the tests"]
