"""Scheduling policies: the built-in ones order ready tasks as documented, a user's own
is loaded by `module:Class`, a bad one stops the run before anything starts."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from conductor.errors import SpecError, UserError
from conductor.exec.base import Request
from conductor.exec.fake import Reply
from conductor.plan.planner import make_plan, remaining_path_hours
from conductor.run.policies import CostAwarePolicy, FifoPolicy, SchedulerView, load_policy
from conductor.run.scheduler import Scheduler
from conductor.run.start import drive
from conductor.spec.model import AgentProfile, Pool, Workflow
from tests.testing.engine import AGENT, SETTINGS, start, task, workflow
from tests.testing.repos import make_repo, write

NOW = 1_000_000.0


def sched(wf: Workflow, **kw: object) -> Scheduler:
    plan = make_plan(wf)
    return Scheduler(wf, plan.selected, {t: plan.wave_of(t) for t in plan.selected},
                     remaining_path_hours(plan), **kw)  # type: ignore[arg-type]  # fmt: skip


def test_default_is_priority_then_longest_path_then_file_order() -> None:
    wf = workflow(Path("/nowhere/repo"), task("A", priority="low"), task("B"),
                  task("C", estimate_s=7200.0), task("D", after=["C"]),
                  task("E", priority="high"))  # fmt: skip
    assert sched(wf).ready(NOW) == ["E", "C", "B", "A"]


def test_fifo_keeps_the_order_tasks_became_ready_in() -> None:
    wf = workflow(Path("/nowhere/repo"), task("A", priority="low"), task("B", priority="high"),
                  task("C"))  # fmt: skip
    s = sched(wf, policy=FifoPolicy(), concurrency=1)
    assert s.ready(NOW) == ["A", "B", "C"]  # all at once: file order, priority or not
    s.set("A", "running")
    s.set("A", "retrying")  # a retry queues again, at the back
    assert s.ready(NOW) == ["B", "C", "A"]


def test_cost_aware_prefers_cheap_agents_and_pools_with_quota_left() -> None:
    wf = workflow(Path("/nowhere/repo"), task("P", agent="pricey"), task("Q", pool="tight"),
                  task("R", pool="roomy"), task("S"),
                  pools={"tight": Pool("tight", usd=10.0), "roomy": Pool("roomy", usd=10.0)})
    s = sched(wf, policy=CostAwarePolicy())
    assert s.ready(NOW) == ["P", "Q", "R", "S"]  # nothing known yet: the default order
    s.agent_cost = {"pricey": (3.0, 1), "fake": (0.5, 5)}
    s.pool_spent = {"tight": 9.0, "roomy": 1.0}
    assert s.estimated_cost("P") == 3.0 and s.estimated_cost("S") == 0.1
    assert s.quota_left("tight") == pytest.approx(0.1) and s.quota_left("local") is None
    # cheap first; among equal estimates, no quota (local) then the most quota left
    assert s.ready(NOW) == ["S", "R", "Q", "P"]


class Reverse:
    """A user's policy: last in the file first."""

    def order(self, ready: Sequence[str], view: SchedulerView) -> list[str]:
        return sorted(ready, key=view.seq, reverse=True)


class Sloppy:
    def order(self, ready: Sequence[str], view: SchedulerView) -> list[str]:
        return ["ghost", ready[-1], ready[-1]]  # invents an id, repeats one, drops the rest


def test_a_policy_cannot_lose_or_invent_a_task() -> None:
    wf = workflow(Path("/nowhere/repo"), task("A"), task("B"), task("C"))
    assert sched(wf, policy=Reverse()).ready(NOW) == ["C", "B", "A"]
    assert sched(wf, policy=Sloppy()).ready(NOW) == ["C", "A", "B"]


class Recorder:
    """Agents that note the order they start in (one at a time), reporting ``costs``."""

    def __init__(self, costs: dict[str, float] | None = None, fail_once: str = "",
                 hold: dict[str, float] | None = None) -> None:  # fmt: skip
        self.order: list[str] = []
        self.hold = hold or {}
        self.costs = costs or {}
        self.fail_once = fail_once
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        is_agent = request.argv[0] in (AGENT, "pricey-agent")
        tid = request.env.get("CONDUCTOR_TASK_ID") if is_agent else None
        if tid is None:
            return Reply()
        with self.lock:
            self.order.append(tid)
            first = self.order.count(tid) == 1
        cost = self.costs.get(request.argv[0], self.costs.get(tid))
        lines = []
        if cost is not None:
            lines = [json.dumps({"type": "system", "subtype": "init", "session_id": tid}),
                     json.dumps({"type": "result", "subtype": "success", "is_error": False,
                                 "result": "ok", "session_id": tid, "total_cost_usd": cost})]
        failing = tid == self.fail_once and first
        time.sleep(self.hold.get(tid, 0.0))
        return Reply(exit_code=1 if failing else 0, output=lines, files={f"{tid}.txt": tid},
                     duration_s=0.0)  # fmt: skip


def run_order(wf: Workflow, agents: Recorder, backoff_s: float | None = None) -> list[str]:
    with start(wf, agents) as h:
        settings = SETTINGS if backoff_s is None else replace(SETTINGS, retry_backoff_s=backoff_s)
        state, _ = drive(h.ws, h.store, h.run_id, [], h.environ, wf, h.plan,
                         settings=settings, executor=h.executor)  # fmt: skip
        result = h.result(state)
    assert result.state == "succeeded", result.tasks
    return agents.order


def test_fifo_and_default_differ_on_a_retried_high_priority_task(tmp_path: Path) -> None:
    def wf(policy: str | None) -> Workflow:
        return workflow(make_repo(tmp_path / f"r-{policy}"), task("A", priority="high",
                        retries=1), task("B"), task("C"), concurrency=1, policy=policy)  # fmt: skip

    # A fails once; while its backoff (0.3-0.6 s) runs B starts and takes longer; then A
    # is ready again, with C
    for policy, order in ((None, ["A", "B", "A", "C"]), ("fifo", ["A", "B", "C", "A"])):
        agents = Recorder(fail_once="A", hold={"B": 0.8})
        assert run_order(wf(policy), agents, backoff_s=0.6) == order


def test_cost_aware_runs_the_cheap_agents_work_first_once_costs_are_known(
    tmp_path: Path,
) -> None:
    pricey = AgentProfile(name="pricey", command=("pricey-agent", "{task_id}", "{prompt_file}"))

    def wf(policy: str | None) -> Workflow:
        base = workflow(make_repo(tmp_path / f"r-{policy}"), task("P1", agent="pricey"),
                        task("C1"), task("P2", agent="pricey"), task("C2"), concurrency=1,
                        policy=policy)  # fmt: skip
        return dataclasses.replace(base, agents={**base.agents, "pricey": pricey})

    costs = {"pricey-agent": 1.0, AGENT: 0.01}
    stub = tmp_path / "bin" / "pricey-agent"  # preflight looks for it on PATH
    write(stub, "#!/bin/sh\nexit 99\n").chmod(0o755)
    assert run_order(wf(None), Recorder(costs)) == ["P1", "C1", "P2", "C2"]
    assert run_order(wf("cost-aware"), Recorder(costs)) == ["P1", "C1", "C2", "P2"]


def test_a_users_policy_is_loaded_from_the_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    write(repo / "mypolicies.py", "class Backwards:\n"
          "    def order(self, ready, view):\n"
          "        return sorted(ready, key=view.seq, reverse=True)\n")  # fmt: skip
    wf = workflow(repo, task("A"), task("B"), task("C"), concurrency=1,
                  policy="mypolicies:Backwards")  # fmt: skip
    assert run_order(wf, Recorder()) == ["C", "B", "A"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nosuchmodule:Policy", "policy `nosuchmodule:Policy` cannot be loaded: "
         "ModuleNotFoundError: No module named 'nosuchmodule'"),
        ("json:Nope", "policy `json:Nope` cannot be loaded: AttributeError"),
        ("json:JSONDecoder", "policy `json:JSONDecoder` has no `order(ready, view)` method"),
        ("lifo", "policy `lifo` is neither built in nor `module:Class`"),
    ],
)
def test_a_bad_policy_is_a_clear_error(name: str, message: str) -> None:
    with pytest.raises(UserError) as err:
        load_policy(name)
    assert message in str(err.value) and "module:Class" in (err.value.hint or "")


def test_a_bad_policy_stops_the_run_before_it_starts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    wf = workflow(repo, task("A"), policy="nosuchmodule:Policy")
    with pytest.raises(SpecError) as err:
        start(wf)
    assert "policy `nosuchmodule:Policy` cannot be loaded" in str(err.value)
    assert not (repo / ".conductor" / "state.db").exists()  # no run was recorded
