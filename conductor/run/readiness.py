"""The scheduler's bookkeeping, kept current on each transition instead of rescanned.

A dispatch used to look at every task (which are ready, which run, which wave is open,
whether the run is over), so a run of n tasks cost O(n²): 143 s of runner CPU at 10,000
tasks (issue 16). Here each transition of one task updates what depends on it:

* per task, how many of its dependencies are ok / bad / succeeded, so its trigger rule's
  verdict (triggers.py) costs O(1 + its gates) instead of a look at every dependency;
* per gated group, how many members are settled and ok (what a gate's input reads);
* the tasks in each state (what runs, what is held or retrying), how many are terminal,
  and how many are unfinished per wave, so the open wave is a pointer that moves;
* which waiting tasks may run now (``admitted``: verdict ``run``, wave open), told to
  the scheduler through ``on_admit`` as they come and go;
* ``dirty``: the tasks whose verdict may have changed since ``Scheduler.settle`` last
  looked, and ``when_due``: tasks with a `when:` that just became runnable.

The ready queue itself, in the policy's order, is run/queue.py.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence

from conductor.run.triggers import BAD, OK, Verdict, counts_verdict, skip_reason
from conductor.spec.model import Workflow
from conductor.state.states import TASK_TERMINAL, TASK_WAITING

NO_WAVE_LIMIT = 1 << 30  # `eager`: every wave is open


class GateStates(dict[str, str]):
    """The gates' states (group -> pending|running|passed|failed). The engine and the run's
    start write it directly; each write tells the bookkeeping, since a gate is an input of
    the tasks waiting for it."""

    def __init__(self, items: Mapping[str, str], changed: Callable[[str], None]) -> None:
        super().__init__(items)
        self._changed = changed

    def __setitem__(self, group: str, state: str) -> None:
        super().__setitem__(group, state)
        self._changed(group)


class Readiness:
    def __init__(
        self, wf: Workflow, selected: Sequence[str], deps: Mapping[str, list[str]],
        wave: Mapping[str, int], eager: bool, state: dict[str, str], gates: Mapping[str, str],
        on_admit: Callable[[str, bool], None],
    ) -> None:  # fmt: skip
        self.state, self.gates, self._on_admit = state, gates, on_admit
        self._deps, self._wave, self._eager = deps, wave, eager
        self._rule = {t: wf.tasks[t].trigger for t in selected}
        self._has_when = {t for t in selected if wf.tasks[t].when}
        self.dependents: dict[str, list[str]] = {t: [] for t in selected}
        for t in selected:
            for d in deps[t]:
                self.dependents[d].append(t)  # once per mention, as the counts count
        self._gates(wf, selected)
        self.by_state: dict[str, set[str]] = {}
        self.terminal = 0
        self._unfinished = [0] * (max(wave.values(), default=0) + 1)
        self._low = len(self._unfinished)  # no wave is unfinished until counted
        self.ok = {t: 0 for t in selected}  # per task: its dependencies ok, bad, succeeded
        self.bad = {t: 0 for t in selected}
        self.succ = {t: 0 for t in selected}
        self.admitted: set[str] = set()
        self._parked: dict[int, set[str]] = {}  # runnable, but their wave is not open yet
        self.dirty: set[str] = set(selected)  # every verdict is news to the first settle
        self.when_due: set[str] = set()
        for t in selected:
            self._count(t, state[t], +1)
            ok, bad = _flags(state[t])
            for d in self.dependents[t]:
                self.ok[d] += ok
                self.bad[d] += bad
                self.succ[d] += state[t] == "succeeded"
        self.open_wave = self._lowest()
        for t in selected:
            self.touch(t)

    def _gates(self, wf: Workflow, selected: Sequence[str]) -> None:
        """Who waits for which gate, and each gate's members (counted by ``_count``)."""
        gates = self.gates
        self.gates_of = {t: _gates_needed(wf, t, gates) for t in selected}
        self.needers: dict[str, list[str]] = {g: [] for g in gates}
        for t in selected:
            for g in self.gates_of[t]:
                self.needers[g].append(t)
        self.gate_of: dict[str, str] = {}
        for t in selected:
            group = wf.tasks[t].group
            if group is not None and group in gates:
                self.gate_of[t] = group
        self.gate_n = {g: 0 for g in gates}
        for g in self.gate_of.values():
            self.gate_n[g] += 1
        self.gate_term = {g: 0 for g in gates}
        self.gate_ok = {g: 0 for g in gates}

    # -- verdicts -------------------------------------------------------------------

    def gate_input(self, group: str) -> str:
        """A gate as a dependency: passed succeeded, failed failed, and one that will never
        run (a member of its group settled without succeeding) blocked."""
        st = self.gates[group]
        if st in ("passed", "failed"):
            return "succeeded" if st == "passed" else "failed"
        n = self.gate_n[group]
        return "blocked" if self.gate_term[group] == n and self.gate_ok[group] < n else "pending"

    def verdict(self, t: str) -> Verdict:
        total, ok, bad, succ = len(self._deps[t]), self.ok[t], self.bad[t], self.succ[t]
        for g in self.gates_of[t]:
            s = self.gate_input(g)
            total += 1
            ok += s in OK
            bad += s in BAD
            succ += s == "succeeded"
        return counts_verdict(self._rule[t], total, ok, bad, succ)

    def bad_input(self, task_id: str) -> str:
        """The first dependency (or gate) that did not succeed: what blocks the task."""
        bad = next((d for d in self._deps[task_id] if self.state[d] in BAD), None)
        if bad is not None:
            return bad
        return next((f"gate {g}" for g in self.gates_of[task_id]
                     if self.gate_input(g) in BAD), "a dependency")  # fmt: skip

    def gate_ready(self) -> list[str]:
        """Gated groups whose selected tasks have all succeeded and whose gate has not run."""
        return [g for g, st in self.gates.items()
                if st == "pending" and self.gate_ok[g] == self.gate_n[g]]  # fmt: skip

    def settle(self, put: Callable[[str, str], None], seq: Mapping[str, int]
               ) -> list[tuple[str, str, str]]:  # fmt: skip
        """Waiting tasks their trigger rule will never run, set (``put``) skipped or
        blocked, as (task, state, why). In rounds in file order, since one task settled
        may settle the next: one later in the file in the same round, one earlier in the
        next; only tasks whose inputs changed since the last look (``dirty``) can have
        changed their verdict, so only they are looked at."""
        out: list[tuple[str, str, str]] = []
        todo, self.dirty = self.dirty, set()
        while todo:
            heap = [(seq[t], t) for t in todo]
            heapq.heapify(heap)
            seen, later = set(todo), set()
            while heap:
                pos, t = heapq.heappop(heap)
                v = self.verdict(t) if self.state[t] == "pending" else "wait"
                if v in ("skip", "block"):
                    why = skip_reason(self._rule[t]) if v == "skip" else self.bad_input(t)
                    put(t, "skipped" if v == "skip" else "blocked")
                    out.append((t, self.state[t], why))
                news, self.dirty = self.dirty, set()
                for d in news:
                    if seq[d] > pos and d not in seen:
                        heapq.heappush(heap, (seq[d], d))
                        seen.add(d)
                    elif seq[d] <= pos:
                        later.add(d)
            todo = later
        return out

    # -- transitions ------------------------------------------------------------------

    def moved(self, t: str, old: str, new: str) -> None:
        """``t`` went from ``old`` to ``new`` (the scheduler's ``state`` already says so)."""
        if old == new:
            self.touch(t)
            return
        g = self.gate_of.get(t)
        before = self.gate_input(g) if g is not None else ""
        self._count(t, old, -1)
        self._count(t, new, +1)
        delta = _flags(new)[0] - _flags(old)[0], _flags(new)[1] - _flags(old)[1]
        dsucc = (new == "succeeded") - (old == "succeeded")
        if delta != (0, 0) or dsucc:
            for d in self.dependents[t]:
                self.ok[d] += delta[0]
                self.bad[d] += delta[1]
                self.succ[d] += dsucc
                self.touch(d)
        if g is not None and self.gate_input(g) != before:
            self.gate_changed(g)
        self.touch(t)
        self._rewave()

    def gate_changed(self, group: str) -> None:
        for t in self.needers[group]:
            self.touch(t)

    def touch(self, t: str) -> None:
        """Its inputs or its state changed: settle looks again; admitted or not anew."""
        self.dirty.add(t)
        st = self.state[t]
        run = st in TASK_WAITING and self.verdict(t) == "run"
        if run and st == "pending" and t in self._has_when:
            self.when_due.add(t)
        wave = self._wave[t]
        parked = self._parked.get(wave)
        if parked is not None:
            parked.discard(t)
        if run and wave > self.open_wave:
            self._parked.setdefault(wave, set()).add(t)
        self._admit(t, run and wave <= self.open_wave)

    def _admit(self, t: str, yes: bool) -> None:
        if yes != (t in self.admitted):
            (self.admitted.add if yes else self.admitted.discard)(t)
            self._on_admit(t, yes)

    def _count(self, t: str, state: str, n: int) -> None:
        (self.by_state.setdefault(state, set()).add if n > 0 else self.by_state[state].discard)(t)
        if state in TASK_TERMINAL:
            self.terminal += n
        else:
            self._unfinished[self._wave[t]] += n
            self._low = min(self._low, self._wave[t]) if n > 0 else self._low
        g = self.gate_of.get(t)
        if g is not None:
            self.gate_term[g] += n * (state in TASK_TERMINAL)
            self.gate_ok[g] += n * (state in OK)

    # -- waves ------------------------------------------------------------------------

    def _lowest(self) -> int:
        """The highest wave allowed to start: with `waves`, the lowest unfinished one
        (a pointer that moves up as waves finish; down only if a task comes back)."""
        if self._eager:
            return NO_WAVE_LIMIT
        while self._low < len(self._unfinished) and self._unfinished[self._low] == 0:
            self._low += 1
        return self._low if self._low < len(self._unfinished) else 0

    def _rewave(self) -> None:
        old, new = self.open_wave, self._lowest()
        if new == old:
            return
        self.open_wave = new
        if new > old:
            for w in range(old + 1, new + 1):
                for t in sorted(self._parked.pop(w, ())):
                    self._admit(t, True)
        else:  # a wave reopened: its later waves wait again
            for t in [t for t in self.admitted if self._wave[t] > new]:
                self._parked.setdefault(self._wave[t], set()).add(t)
                self._admit(t, False)

    def in_states(self, states: frozenset[str]) -> set[str]:
        return set().union(*(self.by_state.get(s, ()) for s in states))


def _flags(state: str) -> tuple[int, int]:
    return int(state in OK), int(state in BAD)


def _gates_needed(wf: Workflow, task_id: str, gates: Mapping[str, str]) -> list[str]:
    """Gated groups this task waits for: those its own group depends on."""
    group = wf.tasks[task_id].group
    if group is None or group not in wf.groups:
        return []
    return [g for g in wf.groups[group].depends_on if g in gates]
