"""Mermaid and Graphviz renderings of the workflow DAG (conductor.report.graphs)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from conductor.report.graphs import mermaid_ids, mermaid_text, to_dot, to_mermaid
from conductor.spec.model import Group, Task, Workflow


def wf_of(tasks: Sequence[Task], groups: Sequence[Group] = ()) -> Workflow:
    return Workflow(
        path=Path("/tmp/wf.yaml"),
        name="g",
        tasks={t.id: t for t in tasks},
        groups={g.id: g for g in groups},
    )


def dep(tid: str, *on: str, **kw: Any) -> Task:
    return Task(id=tid, depends_on=on, deps=on, **kw)


def phase_like() -> Workflow:
    return wf_of(
        [
            dep("T1", title="PostgreSQL schema", group="GROUP_A"),
            dep("T2", title="Service interfaces", group="GROUP_A"),
            dep("T4", "T1", title="Retry engine", group="GROUP_B"),
            dep("T5", title="Circuit breaker", group="GROUP_B"),
            dep("T9", "T4", title="Error-recovery API", group="GROUP_C"),
            dep("LOOSE", title="Not in a group"),
        ],
        [
            Group("GROUP_A", "Foundation"),
            Group("GROUP_B", "Core services", depends_on=("GROUP_A",)),
            Group("GROUP_C", "Public API", depends_on=("GROUP_B",)),
        ],
    )


def subgraph_bodies(text: str) -> dict[str, list[str]]:
    """subgraph id -> the node ids declared inside it."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if m := re.match(r"\s*subgraph (\S+) \[", line):
            current = m.group(1)
            out[current] = []
        elif line.strip() == "end":
            current = None
        elif current and (m := re.match(r"\s*(\w+)\[", line)):
            out[current].append(m.group(1))
    return out


def test_mermaid_has_one_subgraph_per_group_and_ungrouped_tasks_at_top() -> None:
    text = to_mermaid(phase_like())
    assert text.startswith("flowchart TD\n")
    assert subgraph_bodies(text) == {
        "GROUP_A": ["T1", "T2"],
        "GROUP_B": ["T4", "T5"],
        "GROUP_C": ["T9"],
    }
    assert '    subgraph GROUP_A ["GROUP_A: Foundation"]' in text
    assert '        T1["T1: PostgreSQL schema"]' in text
    assert '    LOOSE["LOOSE: Not in a group"]' in text.splitlines()
    assert text.count("\n    end\n") == 3


def test_mermaid_draws_explicit_edges_and_group_edges_only() -> None:
    # Expanded deps (T5 on T1 and T2 through the groups) must not be drawn task by task.
    wf = phase_like()
    wf.tasks["T5"] = Task("T5", group="GROUP_B", deps=("T1", "T2"))
    edges = [line.strip() for line in to_mermaid(wf).splitlines() if "-->" in line]
    assert edges == [
        "T1 --> T4",
        "T4 --> T9",
        "GROUP_A --> GROUP_B",
        "GROUP_B --> GROUP_C",
    ]


def test_mermaid_states_become_classes() -> None:
    states = {
        "T1": "succeeded",
        "T2": "succeeded",
        "T4": "failed",
        "T5": "running",
        "T9": "blocked",
        "LOOSE": "skipped",
    }
    text = to_mermaid(phase_like(), states=states)
    lines = [line.strip() for line in text.splitlines()]
    assert "class T1,T2 succeeded" in lines
    assert "class T4 failed" in lines
    assert "class T5 running" in lines
    assert "class T9 blocked" in lines
    assert "class LOOSE skipped" in lines
    defs = {line.split()[1]: line for line in lines if line.startswith("classDef ")}
    assert set(defs) == {"succeeded", "failed", "running", "blocked", "skipped"}
    assert "stroke-dasharray" in defs["skipped"]
    assert "#2b8a3e" in defs["succeeded"]  # green
    assert "#c92a2a" in defs["failed"]  # red


def test_pending_and_unknown_states_keep_the_default_style() -> None:
    text = to_mermaid(phase_like(), states={"T1": "pending", "T2": "made up"})
    assert "class " not in text and "classDef" not in text


def test_mermaid_selection_draws_only_the_selected_tasks() -> None:
    text = to_mermaid(phase_like(), selected={"T4", "T9"})
    assert subgraph_bodies(text) == {"GROUP_B": ["T4"], "GROUP_C": ["T9"]}
    assert "T1" not in text and "GROUP_A" not in text
    assert "GROUP_B --> GROUP_C" in text


def test_mermaid_ids_are_sanitized_unique_and_never_keywords() -> None:
    wf = wf_of(
        [
            dep("end"),
            dep("graph", "end"),
            dep("api.v2-x", "graph"),
            dep("api_v2_x"),
            dep("1st"),
            dep("G", group="G"),
        ],
        [Group("G"), Group("subgraph")],
    )
    ids = mermaid_ids(wf)
    assert ids[("task", "end")] == "t_end"
    assert ids[("task", "graph")] == "t_graph"
    assert ids[("task", "api.v2-x")] == "api_v2_x"
    assert ids[("task", "api_v2_x")] == "api_v2_x_2"
    assert ids[("task", "1st")] == "t_1st"
    assert ids[("task", "G")] == "G"
    assert ids[("group", "G")] == "G_2"  # a group may share a task's name
    assert ids[("group", "subgraph")] == "g_subgraph"
    assert len(set(ids.values())) == len(ids)
    text = to_mermaid(wf)
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", i) for i in ids.values())
    assert 't_end["end"]' in text  # the label keeps the real id
    assert "t_end --> t_graph" in text
    assert "t_graph --> api_v2_x" in text
    assert "subgraph G_2 [" in text


def test_mermaid_labels_escape_quotes_brackets_and_html() -> None:
    assert mermaid_text('say "hi" [now]') == "say #quot;hi#quot; [now]"
    assert mermaid_text("C# <b>&</b> `x`") == "C#35; #lt;b#gt;#amp;#lt;/b#gt; #96;x#96;"
    assert mermaid_text("two\nlines") == "two lines"
    wf = wf_of([dep("T1", title='He said "no" ]] #1')])
    assert 'T1["T1: He said #quot;no#quot; ]] #35;1"]' in to_mermaid(wf)
    # nothing in a label can close the quoted string early
    for line in to_mermaid(wf).splitlines():
        assert line.count('"') in (0, 2)


def test_dot_has_clusters_edges_and_state_colours() -> None:
    states = {"T1": "succeeded", "LOOSE": "skipped"}
    text = to_dot(phase_like(), states=states)
    assert text.startswith('digraph "g" {')
    assert text.rstrip().endswith("}")
    for gid in ("GROUP_A", "GROUP_B", "GROUP_C"):
        assert f'subgraph "cluster_{gid}" {{' in text
    assert 'label="GROUP_B: Core services";' in text
    assert '"T1" -> "T4";' in text
    assert 'ltail="cluster_GROUP_A", lhead="cluster_GROUP_B"' in text
    t1 = next(line for line in text.splitlines() if line.strip().startswith('"T1" ['))
    assert 'fillcolor="#d3f9d8"' in t1
    loose = next(line for line in text.splitlines() if line.strip().startswith('"LOOSE" ['))
    assert "dashed" in loose


def test_dot_quotes_odd_names() -> None:
    wf = wf_of([dep('a"b', title="back\\slash", group="g 1")], [Group("g 1", 'the "one"')])
    text = to_dot(wf)
    assert '"a\\"b" [label="a\\"b: back\\\\slash"];' in text
    assert 'subgraph "cluster_g_1"' in text
    assert 'label="g 1: the \\"one\\"";' in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz is not installed")
def test_graphviz_accepts_the_dot_output() -> None:
    wf = wf_of(
        [*phase_like().tasks.values(), dep('we"ird', "T9", title="<b>{x}</b>\\")],
        list(phase_like().groups.values()),
    )
    out = subprocess.run(
        ["dot", "-Tsvg"], input=to_dot(wf, {"T1": "failed"}), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert "<svg" in out.stdout


@pytest.mark.skipif(shutil.which("mmdc") is None, reason="mermaid-cli is not installed")
def test_mermaid_cli_renders_the_output(tmp_path: Path) -> None:
    wf = wf_of(
        [*phase_like().tasks.values(), dep("end", "T9", title='quote " and #hash [x]')],
        [*phase_like().groups.values()],
    )
    src = tmp_path / "g.mmd"
    src.write_text(to_mermaid(wf, {"T1": "succeeded", "end": "failed"}))
    out = subprocess.run(
        ["mmdc", "-i", str(src), "-o", str(tmp_path / "g.svg")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
