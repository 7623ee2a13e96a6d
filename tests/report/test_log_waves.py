"""The execution log's waves: right for any graph, and worked out once per render.

The log is rendered again and again while a run goes (report/logwriter.py), so its
waves must cost one pass over the graph, not one per task or per wave (issue 16).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conductor.report import logsections
from conductor.report.log import render
from conductor.spec.model import Workflow
from conductor.state.store import Store
from tests.testing.engine import task, workflow


@st.composite
def graphs(draw: st.DrawFn) -> tuple[Workflow, list[str]]:
    """A DAG (each task after some earlier ones) and the run's task ids in any order,
    some of them left out of the run."""
    n = draw(st.integers(0, 25))
    tasks = [task(f"T{i}", after=[f"T{d}" for d in draw(
        st.lists(st.integers(0, i - 1), max_size=3, unique=True))] if i else [])
        for i in range(n)]  # fmt: skip
    wf = workflow(Path("/nowhere/repo"), *tasks)
    ids = draw(st.permutations([t.id for t in tasks]))
    return wf, [t for t in ids if draw(st.integers(0, 9))]  # about one in ten left out


def reference(wf: Workflow, ids: list[str]) -> dict[str, int]:
    """The definition: 1 + the highest wave among its dependencies in the run."""
    inside = set(ids)

    @cache
    def wave(t: str) -> int:
        return 1 + max((wave(p) for p in wf.tasks[t].deps if p in inside), default=0)

    return {t: wave(t) for t in ids}


@settings(max_examples=200, deadline=None)
@given(graphs())
def test_waves_are_the_topological_generations(case: tuple[Workflow, list[str]]) -> None:
    wf, ids = case
    assert logsections.waves(wf, ids) == reference(wf, ids)


def test_a_long_chain_has_one_wave_per_task() -> None:
    n = 2000  # the old round-per-wave loop took n² steps here
    wf = workflow(Path("/nowhere/repo"), *(task(f"T{i}", after=[f"T{i - 1}"] if i else [])
                                           for i in range(n)))  # fmt: skip
    wave = logsections.waves(wf, [f"T{i}" for i in reversed(range(n))])
    assert wave == {f"T{i}": i + 1 for i in range(n)}


def test_a_cycle_gets_no_wave_and_does_not_hang() -> None:
    wf = workflow(Path("/nowhere/repo"), task("A", after=["B"]), task("B", after=["A"]),
                  task("C", after=["A"]), task("D"))  # fmt: skip
    assert logsections.waves(wf, ["A", "B", "C", "D"]) == {"D": 1}


def test_rendering_a_big_run_works_out_the_waves_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 600
    wf = workflow(Path("/nowhere/repo"), *(task(f"T{i}", after=[f"T{i - 1}"] if i % 3 else [])
                                           for i in range(n)))  # fmt: skip
    store = Store(tmp_path / "state.db")
    store.create_run("r1", "wf.yaml", wf.name, wf.integration_branch, {},
                     [(t, None, "fake", "pending", "") for t in wf.tasks])  # fmt: skip
    calls: list[int] = []
    real = logsections.waves

    def counted(wf: Workflow, task_ids: object) -> dict[str, int]:
        calls.append(1)
        return real(wf, task_ids)  # type: ignore[arg-type]

    monkeypatch.setattr(logsections, "waves", counted)
    text = render(store, "r1", wf)
    store.close()
    assert len(calls) == 1
    assert "### Wave 3" in text and "### Wave 4" not in text
