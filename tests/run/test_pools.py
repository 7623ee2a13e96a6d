"""Pools through the real engine with only the agents faked: slots, quotas, usage-limit
pauses, where each attempt ran, and deadlock detection (issue 13)."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conductor.exec.base import Request
from conductor.exec.fake import Reply
from conductor.plan.planner import make_plan
from conductor.run.start import drive
from conductor.spec.model import AgentProfile, Pool, Task, Workflow
from tests.testing.engine import AGENT, SETTINGS, start, task, task_of, workflow
from tests.testing.repos import make_repo


def pooled(repo: Path, *tasks: Task, pools: dict[str, Pool], **fields: Any) -> Workflow:
    return workflow(repo, *tasks, pools={"local": Pool("local"), **pools}, **fields)


def claude_json(cost: float, result: str = "done", error: bool = False) -> list[str]:
    """Lines of Claude Code's stream-json reporting ``cost`` (the fake agent prints them)."""
    init = {"type": "system", "subtype": "init", "session_id": "s"}
    end = {"type": "result", "subtype": "success", "is_error": error, "result": result,
           "session_id": "s", "total_cost_usd": cost}  # fmt: skip
    return [json.dumps(init), json.dumps(end)]


class Overlap:
    """A handler whose agents take ``hold_s`` and count how many of each pool ran at once."""

    def __init__(self, wf: Workflow, hold_s: float = 0.15, cost: float | None = None) -> None:
        self.wf, self.hold_s, self.cost = wf, hold_s, cost
        self.now: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.order: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        tid = task_of(request)
        if tid is None:
            return Reply()
        pool = self.wf.tasks[tid].pool
        with self.lock:
            self.order.append(tid)
            self.now[pool] = self.now.get(pool, 0) + 1
            self.most[pool] = max(self.most.get(pool, 0), self.now[pool])
        time.sleep(self.hold_s)
        with self.lock:
            self.now[pool] -= 1
        out = claude_json(self.cost) if self.cost is not None else []
        return Reply(output=out, files={f"{tid}.txt": tid})


def test_slots_cap_each_pool_under_the_global_concurrency(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    tasks = [task(f"S{i}", pool="seats") for i in range(4)] + [task(f"L{i}") for i in range(3)]
    wf = pooled(repo, *tasks, pools={"seats": Pool("seats", slots=2)}, concurrency=4)
    agents = Overlap(wf)
    with start(wf, agents) as h:
        result = h.drive()
    assert result.state == "succeeded", result.tasks
    assert agents.most["seats"] == 2  # its slots, though 4 could run at once
    assert agents.most["seats"] + agents.most["local"] <= 4  # the run's cap still holds
    assert agents.most["local"] >= 2
    queued = [e["data"]["reason"] for e in result.events_of("task_queued") if e["task_id"] == "S2"]
    assert queued == ["all 2 slots of pool seats busy"]
    rows = [a for rows in result.attempts.values() for a in rows]
    assert {a["pool"] for a in rows if a["task_id"].startswith("S")} == {"seats"}
    assert {a["host"] for a in rows} == {socket.gethostname()}


def test_a_spent_quota_pauses_its_pool_then_the_run_ends_in_a_deadlock(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    seats = Pool("seats", slots=1, usd=0.5)
    wf = pooled(repo, task("A", pool="seats"), task("B", pool="seats"),
                task("C", pool="seats"), task("D"), pools={"seats": seats},
                deadlock_grace_s=0.3)  # fmt: skip
    with start(wf, Overlap(wf, hold_s=0.01, cost=0.3)) as h:
        t0 = time.monotonic()
        result = h.drive()
        row = h.store.run(h.run_id)
    assert result.state == "failed"
    assert result.states() == {"A": "succeeded", "B": "succeeded", "C": "pending",
                               "D": "succeeded"}  # fmt: skip
    (paused,) = result.events_of("pool_paused")
    assert paused["data"]["pool"] == "seats" and paused["data"]["reason"] == "quota"
    assert "quota of $0.5 reached ($0.6000 spent)" in paused["data"]["message"]
    (dead,) = result.events_of("deadlock")
    assert dead["level"] == "error"
    assert dead["data"]["waiting"] == [{"task": "C", "until": None, "reason":
                                        "pool seats paused: quota of $0.5 reached ($0.6000 spent)"}]
    assert "nothing ran or could start for 0.3s: C: pool seats paused" in dead["data"]["message"]
    assert str(result.tasks["C"]["error"]).startswith("deadlock: pool seats paused")
    assert row is not None and str(row["reason"]).startswith("deadlock: ")
    assert time.monotonic() - t0 < 10


def test_a_deadlocked_run_resumes_once_its_pool_can_go_on(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    wf = pooled(repo, task("A"), task("B", pool="gpu", after=["A"]),
                pools={"gpu": Pool("gpu", slots=0)}, deadlock_grace_s=0.2)  # fmt: skip
    with start(wf, Overlap(wf, hold_s=0.0)) as h:
        first = h.drive()
        assert first.state == "failed" and first.states()["B"] == "pending"
        (dead,) = first.events_of("deadlock")
        assert dead["data"]["waiting"][0]["reason"] == "pool gpu has no slots"
        opened = dataclasses.replace(wf, pools={**wf.pools, "gpu": Pool("gpu", slots=1)})
        state, _ = drive(h.ws, h.store, h.run_id, [], h.environ, opened, make_plan(opened),
                         settings=SETTINGS, executor=h.executor)  # fmt: skip
        again = h.result(state)
    assert again.state == "succeeded"
    assert len(again.agent_runs("A")) == 1 and len(again.agent_runs("B")) == 1


def limited_once(reset_in: float | None, ok_output: Callable[[str], list[str]] = lambda t: []
                 ) -> Callable[[Request], Reply]:  # fmt: skip
    """Agents that hit a usage limit on their task's first attempt (stating when it resets,
    unless ``reset_in`` is None), then succeed."""
    seen: set[str] = set()

    def handler(request: Request) -> Reply:
        tid = task_of(request)
        if tid is None:
            return Reply()
        if tid == "A" and tid not in seen:
            seen.add(tid)
            text = (f"Claude AI usage limit reached|{int(time.time() + reset_in)}"
                    if reset_in is not None else "usage limit reached, sorry")  # fmt: skip
            return Reply(exit_code=1, output=claude_json(0.0, text, error=True))
        return Reply(output=ok_output(tid), files={f"{tid}.txt": tid})

    return handler


def test_a_usage_limit_pauses_the_pool_not_only_the_agent(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    other = AgentProfile(name="other", command=(AGENT, "{task_id}", "{prompt_file}"))
    # one at a time, in file order: A first (its limit pauses pool seats), then B waits
    wf = pooled(repo, task("A", pool="seats"), task("B", pool="seats", agent="other"),
                task("C", agent="other"), pools={"seats": Pool("seats", slots=2)},
                concurrency=1)  # fmt: skip
    wf = dataclasses.replace(wf, agents={**wf.agents, "other": other})
    with start(wf, limited_once(reset_in=2.5)) as h:
        result = h.drive()
    assert result.state == "succeeded", result.tasks
    paused = [e for e in result.events_of("pool_paused") if e["data"]["pool"] == "seats"]
    assert len(paused) == 1 and paused[0]["data"]["reason"] == "usage limit"
    until = paused[0]["data"]["until"]
    started = {e["task_id"]: e["ts"] for e in result.events_of("task_started")}
    assert started["B"] >= until - 0.1  # same pool, other agent: waited for the reset
    assert started["C"] < until - 0.5  # another pool went on meanwhile
    assert result.events_of("pool_resumed")[0]["data"]["pool"] == "seats"


def test_a_usage_limit_with_a_stated_reset_is_waited_out_not_a_deadlock(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    wf = pooled(repo, task("A"), pools={}, deadlock_grace_s=0.1)
    with start(wf, limited_once(reset_in=2)) as h:
        result = h.drive()
    assert result.state == "succeeded", result.tasks
    assert not result.events_of("deadlock")
    (alert,) = [e for e in result.events_of("system_alert") if "until" in e["data"]]
    until = time.strftime("%H:%M:%S", time.localtime(alert["data"]["until"]))
    assert alert["data"]["action"] == f"waiting until {until}"
    assert alert["data"]["alert"].startswith(f"nothing can start before {until}: A: agent fake")


def test_a_usage_limit_without_a_stated_reset_deadlocks_after_the_grace(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    wf = pooled(repo, task("A"), task("B", after=["A"]), pools={}, deadlock_grace_s=0.05)
    settings = dataclasses.replace(SETTINGS, retry_backoff_s=1.0)  # a guessed hold of 15-30 s
    with start(wf, limited_once(reset_in=None)) as h:
        state, _ = drive(h.ws, h.store, h.run_id, [], h.environ, wf, h.plan,
                         settings=settings, executor=h.executor)  # fmt: skip
        result = h.result(state)
    assert result.state == "failed"
    (dead,) = result.events_of("deadlock")
    reasons = {w["task"]: w["reason"] for w in dead["data"]["waiting"]}
    assert "agent fake paused by a usage limit until" in reasons["A"]
    assert reasons["A"].endswith("(a guess: the agent did not say)")
    assert reasons["B"] == "waits for A"
    assert result.states() == {"A": "pending", "B": "pending"}


def test_a_pool_without_a_live_worker_is_named_in_the_deadlock(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    wf = pooled(repo, task("A"), task("B", pool="gpu"), pools={"gpu": Pool("gpu", slots=1)},
                deadlock_grace_s=0.1)  # fmt: skip
    with start(wf, Overlap(wf, hold_s=0.0)) as h:
        h.ctx.pools_down["gpu"] = "no live node has GPU=1"  # what a ray executor would say
        result = h.run(lambda runner: None)
    assert result.state == "failed" and result.states() == {"A": "succeeded", "B": "pending"}
    (dead,) = result.events_of("deadlock")
    assert dead["data"]["waiting"] == [{"task": "B", "reason": "pool gpu: no live node has GPU=1",
                                        "until": None}]  # fmt: skip
