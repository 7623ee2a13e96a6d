"""Trigger rules and `when:` conditions on the real engine, store and repository, with the
agents faked: which tasks run, which are skipped or blocked, and what they are told."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from conductor.exec.base import Request
from conductor.exec.fake import Handler, Reply
from conductor.run.start import RunOptions
from conductor.spec.model import Group, Task, Validator
from tests.testing.engine import run_workflow, start, task, task_of, workflow
from tests.testing.repos import git
from tests.testing.runner import cli, task_states, write_workflow


def agents(fail: frozenset[str] = frozenset(), outputs: dict[str, str] | None = None) -> Handler:
    """Agents that write ``outputs[task]`` to $CONDUCTOR_OUTPUT and a file, and exit 1 for
    the tasks in ``fail``."""

    def handler(request: Request) -> Reply:
        tid = task_of(request)
        if tid is None:
            return Reply()
        with open(request.env["CONDUCTOR_OUTPUT"], "a", encoding="utf-8") as fh:
            fh.write((outputs or {}).get(tid, ""))
        return Reply(exit_code=1 if tid in fail else 0, files={f"{tid}.txt": tid})

    return handler


def upstream(outcome: str) -> tuple[list[Task], frozenset[str]]:
    """Task U ending in ``outcome``, and the tasks whose agents must fail for it."""
    if outcome == "succeeded":
        return [task("U")], frozenset()
    if outcome == "failed":
        return [task("U")], frozenset({"U"})
    if outcome == "skipped":
        return [task("U", when=("false",))], frozenset()
    assert outcome == "blocked"
    return [task("F"), task("U", after=["F"])], frozenset({"F"})


EXPECTED = {  # trigger -> what D does after U succeeded, failed, was skipped, was blocked
    "all_success": ("succeeded", "blocked", "succeeded", "blocked"),
    "all_done": ("succeeded", "succeeded", "succeeded", "succeeded"),
    "one_failed": ("skipped", "succeeded", "skipped", "succeeded"),
    "one_success": ("succeeded", "blocked", "skipped", "blocked"),
}
OUTCOMES = ("succeeded", "failed", "skipped", "blocked")


@pytest.mark.parametrize("rule", sorted(EXPECTED))
@pytest.mark.parametrize("outcome", OUTCOMES)
def test_every_trigger_rule_against_every_upstream_outcome(
    repo: Path, rule: str, outcome: str
) -> None:
    ups, fail = upstream(outcome)
    d = task("D", after=["U"], trigger=rule)
    r = run_workflow(workflow(repo, *ups, d, task("Z", after=["D"])), agents(fail))
    expected = EXPECTED[rule][OUTCOMES.index(outcome)]
    assert r.states()["U"] == outcome
    assert r.states()["D"] == expected, r.tasks["D"]
    assert bool(r.agent_runs("D")) == (expected == "succeeded")
    # what D ended as, Z (all_success) takes in turn: skipped counts as ok
    assert r.states()["Z"] == ("blocked" if expected == "blocked" else "succeeded")
    if expected == "skipped":
        assert r.tasks["D"]["error"].startswith(f"trigger {rule}: no dependency")
        assert any(e["kind"] == "task_skipped" for e in r.events if e["task_id"] == "D")
    if expected == "blocked":
        # by the failure at the root (all_success blocks at once), or by U (one_success
        # knows only once everything settled)
        assert r.tasks["D"]["error"] in ("blocked by U", "blocked by F")
    # the run fails if anything failed or was blocked, however the rest went
    assert r.state == ("succeeded" if outcome in ("succeeded", "skipped") and
                       expected != "blocked" else "failed")  # fmt: skip


def test_a_task_running_despite_a_failed_dependency_is_told_its_work_is_absent(
    repo: Path,
) -> None:
    wf = workflow(repo, task("A"), task("B"), task("report", after=["A", "B"], trigger="all_done"))
    r = run_workflow(wf, agents(frozenset({"A"})))
    assert r.states() == {"A": "failed", "B": "succeeded", "report": "succeeded"}
    text = Path(r.agent_runs("report")[0].argv[2]).read_text()
    assert "A: failed in this run: its work is not in your worktree" in text
    assert "B: changed 1 file(s): B.txt" in text
    assert not (r.repo / "A.txt").exists()


def test_one_failed_runs_as_soon_as_one_dependency_fails(repo: Path) -> None:
    """It does not wait for the others (eager strategy: nothing else holds it back)."""
    started = threading.Event()

    def handler(request: Request) -> Reply:
        tid = task_of(request)
        if tid == "slow":  # finishes only once the handler has started
            assert started.wait(30), "one_failed waited for the slow dependency"
        if tid == "handler":
            started.set()
        return Reply(exit_code=1 if tid == "quick" else 0)

    wf = workflow(repo, task("quick"), task("slow"),
                  task("handler", after=["quick", "slow"], trigger="one_failed"))  # fmt: skip
    r = run_workflow(wf, handler, options=RunOptions(strategy="eager"))
    assert r.states() == {"quick": "failed", "slow": "succeeded", "handler": "succeeded"}


def test_one_success_counts_an_up_to_date_dependency_but_not_a_skipped_one(repo: Path) -> None:
    first = run_workflow(workflow(repo, task("A")), agents())
    assert first.state == "succeeded"
    wf = workflow(repo, task("A"), task("B", when=("false",)),
                  task("C", after=["A", "B"], trigger="one_success"))  # fmt: skip
    r = run_workflow(wf, agents())
    assert r.states() == {"A": "skipped", "B": "skipped", "C": "succeeded"}
    assert r.tasks["A"]["error"].startswith("up to date")


# ---------------------------------------------------------------- when:


def test_a_false_condition_skips_with_its_text_and_dependents_still_run(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cond = "tasks.scan.outputs.count != '0' && env.DEPLOY == 'yes'"
    wf = workflow(repo, task("scan"), task("fix", after=["scan"], when=(cond,)),
                  task("after", after=["fix"]))  # fmt: skip
    monkeypatch.setenv("DEPLOY", "yes")
    skipped = run_workflow(wf, agents(outputs={"scan": "count=0\n"}))
    assert skipped.states() == {"scan": "succeeded", "fix": "skipped", "after": "succeeded"}
    assert skipped.tasks["fix"]["error"] == f"when false: {cond}"
    event = next(e for e in skipped.events if e["kind"] == "task_skipped")
    assert event["task_id"] == "fix" and event["data"]["condition"] == cond
    assert skipped.agent_runs("fix") == []


def test_a_true_condition_runs_the_task(repo: Path) -> None:
    cond = "tasks.scan.outputs.count > 2 && tasks.scan.state == 'succeeded'"
    wf = workflow(repo, task("scan"), task("fix", after=["scan"], when=(cond,)))
    r = run_workflow(wf, agents(outputs={"scan": "count=10\n"}))
    assert r.states() == {"scan": "succeeded", "fix": "succeeded"}


def test_a_missing_output_is_empty_as_in_github(repo: Path) -> None:
    wf = workflow(repo, task("A"), task("B", after=["A"], when=("tasks.A.outputs.api != ''",)),
                  task("C", after=["A"], when=("tasks.A.outputs.api == ''",)))  # fmt: skip
    r = run_workflow(wf, agents(outputs={"A": "port=1\n"}))
    assert r.states() == {"A": "succeeded", "B": "skipped", "C": "succeeded"}


def test_a_group_condition_applies_to_each_member(repo: Path) -> None:
    g = Group("late", when="tasks.A.outputs.go == 'yes'")
    assert g.when is not None
    # as spec builds them: the group's condition, then the task's own
    wf = workflow(repo, task("A"), task("B", after=["A"], group="late", when=(g.when, "true")),
                  task("C", after=["A"], group="late", when=(g.when,)), groups=[g])  # fmt: skip
    r = run_workflow(wf, agents(outputs={"A": "go=no\n"}))
    assert r.states() == {"A": "succeeded", "B": "skipped", "C": "skipped"}
    assert r.tasks["B"]["error"] == "when false: tasks.A.outputs.go == 'yes'"


def test_a_condition_on_a_failed_dependency_with_all_done(repo: Path) -> None:
    wf = workflow(repo, task("A"), task("B"),
                  task("notify", after=["A", "B"], trigger="all_done",
                       when=("tasks.A.state == 'failed' || tasks.B.state == 'failed'",)),
                  task("cleanup", after=["A", "B"], trigger="all_done",
                       when=("tasks.A.state != 'failed'",)))  # fmt: skip
    r = run_workflow(wf, agents(frozenset({"A"})))
    assert r.states() == {"A": "failed", "B": "succeeded", "notify": "succeeded",
                          "cleanup": "skipped"}  # fmt: skip


def test_hostile_text_is_never_executed(repo: Path, tmp_path: Path) -> None:
    """Not in a condition, not in the values it compares: nothing but comparison happens."""
    pwned = tmp_path / "pwned"
    code = f"__import__('os').system('touch {pwned}')"
    bad = task("bad", after=["A"], when=(code,))  # validate refuses it; the engine fails it
    compare = task("compare", after=["A"], when=(f'tasks.A.outputs.x == "{code}"',))
    r = run_workflow(workflow(repo, task("A"), bad, compare),
                     agents(outputs={"A": f"x={code}\n"}))  # fmt: skip
    assert r.states() == {"A": "succeeded", "bad": "failed", "compare": "succeeded"}
    assert r.tasks["bad"]["error"].startswith("when: ")
    assert r.attempts["bad"] == [] and r.agent_runs("bad") == []
    assert not pwned.exists()


def test_a_resumed_run_keeps_what_conditions_skipped(repo: Path) -> None:
    wf = workflow(repo, task("A"), task("B"), task("C", after=["A", "B"], trigger="one_success"))
    with start(wf, agents()) as h:
        h.store.update_task(h.run_id, "A", state="skipped", error="when false: false")
        h.store.update_task(h.run_id, "B", state="skipped", error="up to date (succeeded in run x)")
        sched = h.runner().sched  # as a resumed runner builds it
    assert sched.state["A"] == "skipped" and sched.state["B"] == "succeeded"


# ---------------------------------------------------------------- end to end, shell tasks

E2E = """
version: 1
name: t
tasks:
  scan:
    output_keys: [count]
    run: 'echo "count=0" >> "$CONDUCTOR_OUTPUT"'
  fix:
    depends_on: [scan]
    when: "tasks.scan.outputs.count != '0'"
    run: "echo fixed > fixed.txt"
  broken:
    run: "exit 3"
  report:
    depends_on: [fix, broken]
    trigger: all_done
    run: 'echo "fix={{ tasks.fix.state }} broken={{ tasks.broken.state }}" > report.txt'
"""


def test_conditions_and_trigger_rules_end_to_end(repo: Path) -> None:
    write_workflow(repo, E2E)
    assert cli(repo, "validate", "wf.yaml").returncode == 0
    proc = cli(repo, "run", "wf.yaml")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # broken failed
    assert "skipped: when false: tasks.scan.outputs.count != '0'" in proc.stdout
    assert task_states(repo) == {"scan": "succeeded", "fix": "skipped", "broken": "failed",
                                 "report": "succeeded"}  # fmt: skip
    assert git(repo, "show", "conductor/t:report.txt") == "fix=skipped broken=failed"
    status = json.loads(cli(repo, "status", "--json").stdout)
    fix = next(t for t in status["tasks"] if t["id"] == "fix")
    assert fix["error"] == "when false: tasks.scan.outputs.count != '0'"
    log = next((repo / ".conductor").rglob("EXECUTION_LOG.md")).read_text()
    assert "when false: tasks.scan.outputs.count != '0'" in log


def test_a_condition_on_matrix_values_skips_some_expansions(repo: Path) -> None:
    write_workflow(
        repo,
        """
        version: 1
        name: t
        tasks:
          build:
            for_each: [api, docs]
            when: "matrix.item != 'docs'"
            run: 'echo {{ matrix.item }} > {{ matrix.item }}.txt'
        """,
    )
    proc = cli(repo, "run", "wf.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert task_states(repo) == {"build[api]": "succeeded", "build[docs]": "skipped"}


@pytest.mark.parametrize("broken", ["member", "gate"])
def test_a_group_gate_counts_as_a_dependency(repo: Path, broken: str) -> None:
    """A failed gate, or one that never runs because a member failed, blocks all_success
    tasks of the groups after it; an all_done task runs anyway."""
    gate = Group("A", validate=(Validator("run", run="check-gate"),))
    after = Group("B", depends_on=("A",))
    wf = workflow(repo, task("a1", group="A"), task("work", group="B"),
                  task("report", group="B", trigger="all_done"), groups=[gate, after])  # fmt: skip

    def handler(request: Request) -> Reply | int | None:
        if "check-gate" in " ".join(request.argv):
            return Reply(exit_code=1 if broken == "gate" else 0)
        return agents(frozenset({"a1"}) if broken == "member" else frozenset())(request)

    r = run_workflow(wf, handler)
    assert r.states() == {"a1": "failed" if broken == "member" else "succeeded",
                          "work": "blocked", "report": "succeeded"}  # fmt: skip
