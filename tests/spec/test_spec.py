"""Good workflow files load into the model the rest of conductor relies on."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from conductor.errors import SpecError
from conductor.spec.checks import BUILTIN_AGENTS
from conductor.spec.load import load_workflow
from conductor.spec.model import Loc, Validator
from conductor.spec.names import resolve_env_refs
from conductor.spec.schema import _quick_check, load_schema, schema_path
from conductor.spec.yamlsrc import load_source, parse_source
from tests.testing.paths import BAD, GOOD

FULL = GOOD / "full.yaml"


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_full_example_loads_every_field() -> None:
    wf = load_workflow(FULL)
    assert wf.path == FULL
    assert (wf.name, wf.version, wf.base, wf.strategy, wf.concurrency) == (
        "full-example",
        1,
        "main",
        "eager",
        8,
    )
    assert wf.description == "Every field of the workflow format"
    assert wf.integration_branch == "conductor/full-example-int"
    assert wf.log == "docs/reports/FULL_EXECUTION_LOG.md"
    assert wf.budget_usd == 50.0
    assert wf.workspace.copy == (".env",) and wf.workspace.symlink == ("node_modules",)
    assert wf.workspace.setup == ("npm ci",) and wf.workspace.keep == "always"
    assert len(wf.hooks) == 11
    assert wf.hooks["task_failed"] == ("notify-send", "conductor", "{task} failed")
    assert list(wf.tasks) == ["T1", "T2", "T3", "T4"]


def test_full_example_tasks() -> None:
    t1, t2, t3, t4 = load_workflow(FULL).tasks.values()
    assert t1.role == "database engineer"
    assert t1.prompt == "Create the schema for the orders service.\n"
    assert t1.inputs == ("docs/spec.md",) and t1.outputs == ("db/schema.sql",)
    assert t1.touches == ("db/**", "tests/db/**") and t1.skills == ("database",)
    assert (t1.priority, t1.retries, t1.on_conflict, t1.budget_usd) == ("high", 2, "retry", 5.5)
    assert (t1.estimate_s, t1.timeout_s, t1.idle_timeout_s) == (14400, 14400, 1800)
    assert t1.env == {"PGHOST": "localhost"}
    assert [v.kind for v in t1.validate] == ["run", "exists", "contains", "changes"]
    assert t1.validate[2] == Validator(
        "contains", path="db/schema.sql", pattern="CREATE TABLE", loc=Loc(str(FULL), 81, 9)
    )
    assert t1.loc == Loc(str(FULL), 68, 3)
    # defaults fill what a task leaves out
    assert (t2.timeout_s, t2.idle_timeout_s, t2.retries, t2.on_conflict) == (7200, 1200, 1, "fail")
    assert t2.prompt_file == "prompts/T2.md" and t2.agent == "mine" and t2.estimate_s == 90
    # `<<: *common` from the x- extension key
    assert (t3.priority, t3.retries, t3.agent, t3.estimate_s) == ("low", 3, "codex", 5400)
    # a run task without agent goes to the shell profile, not defaults.agent (claude)
    assert (t4.agent, t4.run) == ("shell", "make lint")
    assert t4.validate[0].min_files == 1


def test_group_dependencies_expand_into_task_deps() -> None:
    wf = load_workflow(FULL)
    assert wf.tasks["T3"].depends_on == () and wf.tasks["T3"].deps == ("T1", "T2")
    assert wf.tasks["T4"].depends_on == ("T3",)
    assert wf.tasks["T4"].deps == ("T3", "T1", "T2")  # explicit first, then group order
    assert wf.tasks["T2"].deps == ("T1",)
    group_b = wf.groups["GROUP_B"]
    assert group_b.depends_on == ("GROUP_A",) and group_b.loc == Loc(str(FULL), 60, 3)
    assert group_b.validate[0].run == "pytest -q" and group_b.validate[0].timeout_s == 600
    assert wf.group_tasks("GROUP_A") == ["T1", "T2"]


def test_agents_merge_builtins_with_the_file() -> None:
    agents = load_workflow(FULL).agents
    assert set(BUILTIN_AGENTS) <= set(agents)
    assert agents["claude"].model == "sonnet" and agents["claude"].fallback == "codex"
    assert agents["claude"].args == ("--verbose",) and agents["claude"].loc is not None
    assert agents["codex"].executor == "tmux"
    assert agents["aider"].preset == "aider" and agents["aider"].loc is None
    assert agents["claude-code"].preset == "claude-code"
    mine = agents["mine"]
    assert mine.kind == "command" and mine.command is not None and mine.command[0] == "my-agent"
    assert mine.env == {"MY_TOKEN": "${MY_TOKEN}", "MODE": "fast"}


def test_minimal_workflow_gets_builtin_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nname: mini\ntasks:\n  a: {prompt: do it}\n  b: {run: make, depends_on: [a]}\n",
    )
    wf = load_workflow(path)
    assert wf.integration_branch == "conductor/mini"
    assert (wf.base, wf.strategy, wf.concurrency, wf.log, wf.budget_usd) == (
        "HEAD",
        "waves",
        4,
        None,
        None,
    )
    assert wf.workspace.keep == "on_failure" and wf.hooks == {} and wf.groups == {}
    a, b = wf.tasks.values()
    assert (a.agent, b.agent) == ("claude", "shell")
    assert (a.priority, a.retries, a.on_conflict) == ("normal", 1, "retry")
    assert (a.timeout_s, a.idle_timeout_s, a.estimate_s, a.title) == (None, None, None, "")
    assert b.deps == ("a",)
    assert set(wf.agents) == set(BUILTIN_AGENTS)


def test_shell_default_agent_and_custom_shell_profile(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nname: sh\ndefaults: {agent: sh}\nagents: {sh: {preset: shell}}\n"
        "tasks:\n  a: {run: make}\n  b: {prompt: hi, agent: gemini}\n",
    )
    a, b = load_workflow(path).tasks.values()
    assert (a.agent, b.agent) == ("sh", "gemini")


def test_integer_seconds_are_durations(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nname: d\ndefaults: {timeout: 90}\ntasks:\n  a: {prompt: p, estimate: '120'}\n",
    )
    task = load_workflow(path).tasks["a"]
    assert (task.timeout_s, task.estimate_s) == (90, 120)


def test_yaml_on_key_is_a_hooks_mapping_not_true(tmp_path: Path) -> None:
    # YAML 1.1 reads a bare `on` as a boolean; as a key it must stay "on".
    path = write(
        tmp_path, "version: 1\nname: h\non:\n  merged: [echo, hi]\ntasks:\n  a: {prompt: p}\n"
    )
    assert load_workflow(path).hooks == {"merged": ("echo", "hi")}


def test_source_records_value_and_key_positions() -> None:
    source = parse_source("a:\n  b: [x, {c: 1}]\n  d: &anchor {e: 2}\n  f: *anchor\n", "s.yaml")
    assert source.data == {"a": {"b": ["x", {"c": 1}], "d": {"e": 2}, "f": {"e": 2}}}
    assert source.locs[("a", "b")] == (2, 6)
    assert source.locs[("a", "b", 1, "c")] == (2, 14)
    assert source.key_locs[("a", "b", 1, "c")] == (2, 11)
    assert source.key_locs[("a", "f")] == (4, 3)
    assert source.where(("a", "b", 7)) == (2, 6)  # nearest located ancestor


def test_merge_keys_explicit_values_win() -> None:
    text = "base: &b {x: 1, y: 2}\nother: &o {y: 9, z: 3}\nm:\n  <<: [*b, *o]\n  x: 5\n"
    assert parse_source(text, "m.yaml").data["m"] == {"x": 5, "y": 2, "z": 3}


def test_env_refs_are_listed_but_not_resolved() -> None:
    assert resolve_env_refs("${A}-${B_2}:${A} $NOT ${1X}") == ["A", "B_2"]


def test_prompt_file_is_relative_to_the_workflow(tmp_path: Path) -> None:
    (tmp_path / "sub" / "prompts").mkdir(parents=True)
    (tmp_path / "sub" / "prompts" / "a.md").write_text("do it\n")
    path = write(
        tmp_path / "sub", "version: 1\nname: p\ntasks:\n  a: {prompt_file: prompts/a.md}\n"
    )
    assert load_workflow(path).tasks["a"].prompt_file == "prompts/a.md"
    moved = write(tmp_path, path.read_text())
    with pytest.raises(SpecError, match="does not exist"):
        load_workflow(moved)


def test_schema_is_a_documented_draft_2020_12_schema() -> None:
    schema = json.loads(schema_path().read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$id"].startswith("https://") and schema["required"] == [
        "version",
        "name",
        "tasks",
    ]

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                assert "description" in prop, f"{where}.{name} lacks a description"
            if "properties" in node:
                assert node.get("additionalProperties") is False, f"{where} is open"
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(schema, "#")


def test_quick_check_agrees_with_jsonschema_on_every_sample() -> None:
    quick, full = _quick_check(), Draft202012Validator(load_schema())
    assert quick is not None
    samples = [FULL, *sorted(BAD.glob("*.yaml"))]
    checked = 0
    for path in samples:
        try:
            data = load_source(path).data
        except SpecError:
            continue  # not even YAML
        assert quick(data) == full.is_valid(data), path.name
        checked += 1
    assert checked > 30


def test_thousand_task_workflow_loads_fast(tmp_path: Path) -> None:
    lines = ["version: 1", "name: big", "groups: {G0: {}, G1: {depends_on: [G0]}}", "tasks:"]
    for i in range(1000):
        deps = ", ".join(f"T{j}" for j in range(max(0, i - 3), i))
        lines.append(
            f"  T{i}: {{title: task {i}, group: G{i // 500}, prompt: do {i}, "
            f"depends_on: [{deps}], outputs: [o{i}], priority: normal, estimate: 1h30m, "
            f"timeout: 2h, validate: [{{run: pytest}}], touches: ['src/{i}/**']}}"
        )
    path = write(tmp_path, "\n".join(lines) + "\n")
    load_workflow(path)  # warm the schema caches
    started = time.perf_counter()
    wf = load_workflow(path)
    elapsed = time.perf_counter() - started
    assert len(wf.tasks) == 1000 and len(wf.tasks["T999"].deps) == 503
    assert elapsed < 1.5, f"{elapsed:.2f}s"  # ~0.15 s here; generous for slow CI


SAMPLE_VALUES = [None, 0, 1, -1, 2.5, True, "", "x", "T1", "GROUP_A", "2h", "a b", [], ["T1"],
                 [1], ["a", "a"], {}, {"run": "x"}, {"x-a": 1}, [{"exists": ["a"]}]]  # fmt: skip


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    items: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    for key, value in items:
        found += _paths(value, (*path, key))
    return found


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_quick_check_never_accepts_what_jsonschema_rejects(data: st.DataObject) -> None:
    """The fast predicate may only say "valid" when jsonschema agrees."""
    doc = copy.deepcopy(load_source(FULL).data)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)[1:]))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        value = copy.deepcopy(data.draw(st.sampled_from(SAMPLE_VALUES)))
        if isinstance(parent, dict) and data.draw(st.booleans()):
            parent[data.draw(st.sampled_from(["T9", "extra", "x-ok", "run"]))] = value
        else:
            parent[path[-1]] = value
    quick = _quick_check()
    assert quick is not None
    assert quick(doc) == Draft202012Validator(load_schema()).is_valid(doc)
