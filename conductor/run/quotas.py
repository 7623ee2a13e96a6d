"""Spend and pauses while a run goes: the run's budget, each pool's quota, usage-limit
holds on agents and pools, dispatch paused while memory or disk is short, and the
deadlock watchdog (run/deadlock.py).

The engine calls in at three moments: ``tick`` before each dispatch (holds that ended
are lifted), ``check`` after each outcome (spend summed from the store, so a resumed run
counts what it spent before), and ``deadlocked`` when a turn of its loop started nothing.
What this decides goes to the scheduler's pool fields and out as events
(``pool_paused`` / ``pool_resumed``, ``budget_reached``, ``deadlock``).
"""

from __future__ import annotations

import json
import time

from conductor.report.poolreport import snapshot
from conductor.run import resources
from conductor.run.context import RunContext
from conductor.run.deadlock import Watchdog, clock, describe
from conductor.run.scheduler import Scheduler
from conductor.spec.model import DEFAULT_DEADLOCK_GRACE_S


class Quotas:
    def __init__(self, ctx: RunContext, sched: Scheduler) -> None:
        self.ctx = ctx
        self.sched = sched
        grace = ctx.wf.deadlock_grace_s
        self.watchdog = Watchdog(DEFAULT_DEADLOCK_GRACE_S if grace is None else grace)
        self.deadlock = ""  # why the run ended, once it deadlocked
        self.budget_reason = ""  # once the run's own budget is reached
        self.run_spent = 0.0
        self._checked = False
        wf = ctx.wf  # spend is summed only for what reads it (one query per outcome)
        self._spend = (wf.budget_usd is not None or any(p.usd for p in wf.pools.values())
                       or wf.policy not in (None, "default", "fifo"))  # fmt: skip

    # -- spend ------------------------------------------------------------------------

    def refresh(self) -> None:
        """What each pool and each agent profile spent in this run, from the store."""
        pools: dict[str, float] = {}
        agents: dict[str, tuple[float, int]] = {}
        self.run_spent = 0.0
        for a in self.ctx.store.attempts(self.ctx.run_id):
            cost = a["cost_usd"]
            if cost is None:
                continue
            self.run_spent += cost
            if a["pool"]:
                pools[a["pool"]] = pools.get(a["pool"], 0.0) + cost
            agent = self.sched.agent_of.get(a["task_id"])
            if agent is not None:
                spent, n = agents.get(agent, (0.0, 0))
                agents[agent] = (spent + cost, n + 1)
        self.sched.pool_spent, self.sched.agent_cost = pools, agents

    def check(self) -> str | None:
        """Pause every pool whose quota is reached; the run budget's reason when the run's
        own budget is reached (the engine then stops dispatching altogether)."""
        self._checked = True
        if self._spend:
            self.refresh()
        sched = self.sched
        paused = len(sched.pool_paused)
        for name, pool in self.ctx.wf.pools.items():
            spent = sched.pool_spent.get(name, 0.0)
            if pool.usd is None or spent < pool.usd or name in sched.pool_paused:
                continue
            why = f"quota of ${pool.usd:g} reached (${spent:.4f} spent)"
            sched.pool_paused[name] = why
            text = f"pool {name} paused: {why}"
            self.ctx.emit("pool_paused", None, level="warning", pool=name, reason="quota",
                          spent=spent, usd=pool.usd, message=text)  # fmt: skip
        if len(sched.pool_paused) != paused:
            self.record()
        budget = self.ctx.wf.budget_usd
        if budget is None or self.budget_reason or self.run_spent < budget:
            return None
        spent = self.run_spent
        self.budget_reason = f"budget of ${budget:g} reached (${spent:.4f} spent)"
        self.ctx.emit("budget_reached", None, level="warning", spent=spent, budget=budget)
        return self.budget_reason

    def watch_resources(self) -> None:
        """Pause dispatch while memory or disk is short; say so, and when it recovers."""
        settings = self.ctx.settings
        problem = resources.shortage(
            self.ctx.ws.state_dir, settings.min_free_memory_mb, settings.min_free_disk_mb
        )
        if problem and not self.sched.paused:
            self.sched.paused = True
            self.ctx.emit(
                "system_alert", None, level="warning", alert=problem, action="dispatch paused"
            )
        elif not problem and self.sched.paused:
            self.sched.paused = False
            self.ctx.emit(
                "system_alert",
                None,
                level="info",
                alert="resources recovered",
                action="dispatch resumed",
            )

    # -- usage limits -----------------------------------------------------------------

    def hold(self, task_id: str, agent: str, until: float, stated: bool) -> None:
        """A usage limit: the agent profile and the task's pool start nothing until
        ``until`` (``stated``: the agent said when; otherwise it is a guess)."""
        sched = self.sched
        sched.held[agent] = max(sched.held.get(agent, 0.0), until)
        (sched.known_reset.add if stated else sched.known_reset.discard)(agent)
        pool = self.ctx.wf.tasks[task_id].pool
        sched.pool_held[pool] = max(sched.pool_held.get(pool, 0.0), until)
        (sched.pool_known.add if stated else sched.pool_known.discard)(pool)
        text = f"pool {pool} paused until {clock(sched.pool_held[pool])}: usage limit of {agent}"
        self.ctx.emit("pool_paused", None, level="warning", pool=pool, reason="usage limit",
                      agent=agent, until=sched.pool_held[pool], message=text)  # fmt: skip
        self.record()

    def tick(self, now: float | None = None) -> None:
        """Lift the holds that ended (and, first time, pause pools a resumed run finds
        already spent)."""
        now = time.time() if now is None else now
        if not self._checked:
            self.check()
            self.record()
        sched = self.sched
        sched.pool_down = dict(self.ctx.pools_down)  # an executor's word (ray: no node fits)
        for agent in [a for a, until in sched.held.items() if until <= now]:
            del sched.held[agent]
            sched.known_reset.discard(agent)
        for pool in [p for p, until in sched.pool_held.items() if until <= now]:
            del sched.pool_held[pool]
            sched.pool_known.discard(pool)
            self.ctx.emit("pool_resumed", None, pool=pool, message=f"pool {pool} resumed")
            self.record()

    def record(self) -> None:
        """The pools' snapshot in the run's options, where `status` reads it."""
        ctx = self.ctx
        row = ctx.store.run(ctx.run_id)
        opts = json.loads(row["options"] or "{}") if row is not None else {}
        s = self.sched
        opts["pools"] = snapshot(ctx.wf, s.concurrency, s.pool_paused, s.pool_held)
        ctx.store.update_run(ctx.run_id, options=json.dumps(opts))

    # -- deadlock ---------------------------------------------------------------------

    def deadlocked(self, now: float | None = None) -> bool:
        """True once nothing has run or could start for the grace: the waiting tasks are
        left pending (resume picks them up) and the run is to end failed."""
        now = time.time() if now is None else now
        verdict = self.watchdog.check(self.sched, now)
        waits = self.watchdog.waits
        if verdict == "waiting":
            until = clock(self.watchdog.resumes_at())
            self.ctx.emit("system_alert", None, level="warning",
                          alert=f"nothing can start before {until}: {describe(waits)}",
                          action=f"waiting until {until}", until=self.watchdog.resumes_at(),
                          waiting=[w.doc() for w in waits])  # fmt: skip
            return False
        if verdict != "deadlock":
            return False
        grace = self.watchdog.grace_s
        text = f"nothing ran or could start for {grace:g}s: {describe(waits)}"
        self.deadlock = f"deadlock: {text}"
        self.ctx.emit("deadlock", None, level="error", message=text, grace_s=grace,
                      waiting=[w.doc() for w in waits])  # fmt: skip
        for w in waits:
            self.ctx.store.update_task(self.ctx.run_id, w.task, state="pending",
                                       error=f"deadlock: {w.reason}")  # fmt: skip
        return True
