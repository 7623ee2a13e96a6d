"""Plans of workflows with fan-out: random files with `matrix:` / `for_each:` tasks and
dependencies on whole fan-outs, single expansions and groups, loaded as a user's would be."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conductor.plan.planner import make_plan
from conductor.spec.load import load_workflow
from conductor.spec.model import Workflow

VALUES = st.lists(st.sampled_from(["a", "b", "c", "3.12", "x y"]), min_size=1, max_size=3,
                  unique=True)  # fmt: skip


@st.composite
def fanout_files(draw: st.DrawFn) -> dict[str, Any]:
    """A workflow document: tasks t0..tn, some fanned out, each depending on earlier ones
    as a whole, on one expansion of them, or through its group."""
    tasks: dict[str, Any] = {}
    ids: dict[str, list[str]] = {}  # task -> the ids it expands to
    split = draw(st.integers(0, 7))  # t0.. are in group A, the rest in B (which needs A)
    for i in range(draw(st.integers(1, 7))):
        tid = f"t{i}"
        spec: dict[str, Any] = {"run": "true", "group": "A" if i < split else "B"}
        kind = draw(st.sampled_from(["plain", "for_each", "matrix"]))
        if kind == "for_each":
            spec["for_each"] = draw(VALUES)
            ids[tid] = [f"{tid}[{v}]" for v in spec["for_each"]]
        elif kind == "matrix":
            spec["matrix"] = {"k": draw(VALUES), "j": draw(VALUES)}
            pairs = itertools.product(spec["matrix"]["k"], spec["matrix"]["j"])
            ids[tid] = [f"{tid}[k={k},j={j}]" for k, j in pairs]
            spec["max_parallel"] = draw(st.integers(1, 3))
        else:
            ids[tid] = [tid]
        deps = [t for t in list(ids)[:-1] if draw(st.booleans())]
        spec["depends_on"] = [draw(st.sampled_from([t, *ids[t]])) for t in deps]
        tasks[tid] = spec
    return {"version": 1, "name": "fo", "groups": {"A": {}, "B": {"depends_on": ["A"]}},
            "tasks": tasks, "_ids": ids}  # fmt: skip


def load(doc: dict[str, Any]) -> Workflow:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wf.yaml"
        path.write_text(
            yaml.safe_dump({k: v for k, v in doc.items() if k != "_ids"}, sort_keys=False)
        )
        return load_workflow(path)


@settings(max_examples=120, deadline=None)
@given(fanout_files())
def test_an_expanded_plan_respects_every_edge(doc: dict[str, Any]) -> None:
    wf = load(doc)
    expected = [e for ids in doc["_ids"].values() for e in ids]
    assert list(wf.tasks) == expected  # expansions in place of their task, in order
    plan = make_plan(wf)
    assert sorted(plan.selected) == sorted(expected)
    for tid, task in wf.tasks.items():
        for dep in task.deps:  # each expansion, each fanned-in dependency, each group edge
            assert plan.wave_of(dep) < plan.wave_of(tid), (dep, tid)
        written = doc["tasks"][task.template or tid]["depends_on"]
        for dep in written:  # depending on a fan-out task is depending on all of it
            assert set(doc["_ids"].get(dep, [dep])) <= set(task.deps)
    for template, ids in doc["_ids"].items():  # expansions of one task share one wave
        assert len({plan.wave_of(t) for t in ids}) == 1, template
    for group in ("A", "B"):  # a group holding a fan-out task holds all its expansions
        tasks = doc["tasks"]
        members = [e for t, ids in doc["_ids"].items() if tasks[t]["group"] == group for e in ids]
        assert wf.group_tasks(group) == members
