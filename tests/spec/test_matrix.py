"""Fan-out: `matrix:` / `for_each:` tasks expand, when the file is loaded, into one task per
combination, with branch-safe names, filled-in fields and dependencies on all of them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conductor.agents.briefing import read_prompt_file
from conductor.errors import SpecError
from conductor.spec.fanout import by_template, collapse, expansions
from conductor.spec.load import load_workflow
from conductor.spec.model import Validator, Workflow
from conductor.spec.names import component_problem, ref_problem, task_component
from conductor.spec.schema import _quick_check
from conductor.spec.yamlsrc import load_source


def load(tmp_path: Path, text: str) -> Workflow:
    path = tmp_path / "wf.yaml"
    path.write_text("version: 1\nname: fo\n" + textwrap.dedent(text))
    return load_workflow(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load(tmp_path, text)
    return [d.render() for d in caught.value.diagnostics]


def test_the_github_actions_example_expands_as_github_does(tmp_path: Path) -> None:
    # docs.github.com: "Expanding or adding matrix configurations"
    text = """
        tasks:
          T:
            run: "echo {{ matrix.fruit }}"
            matrix:
              fruit: [apple, pear]
              animal: [cat, dog]
              include:
                - color: green
                - color: pink
                  animal: cat
                - fruit: apple
                  shape: circle
                - fruit: banana
                - fruit: banana
                  animal: cat
    """
    wf = load(tmp_path, text)
    got = {t.id: t.matrix for t in wf.tasks.values()}
    assert got == {
        "T[fruit=apple,animal=cat]": {"fruit": "apple", "animal": "cat", "color": "pink",
                                      "shape": "circle"},
        "T[fruit=apple,animal=dog]": {"fruit": "apple", "animal": "dog", "color": "green",
                                      "shape": "circle"},
        "T[fruit=pear,animal=cat]": {"fruit": "pear", "animal": "cat", "color": "pink"},
        "T[fruit=pear,animal=dog]": {"fruit": "pear", "animal": "dog", "color": "green"},
        "T[fruit=banana]": {"fruit": "banana"},
        "T[fruit=banana,animal=cat]": {"fruit": "banana", "animal": "cat"},
    }  # fmt: skip
    quick = _quick_check()
    assert quick is not None and quick(load_source(tmp_path / "wf.yaml").data)  # fast path
    assert list(got)[:4] == [  # the first key varies slowest, as in the product
        "T[fruit=apple,animal=cat]", "T[fruit=apple,animal=dog]",
        "T[fruit=pear,animal=cat]", "T[fruit=pear,animal=dog]",
    ]  # fmt: skip


def test_exclude_takes_partial_matches_and_include_comes_after_it(tmp_path: Path) -> None:
    text = """
        tasks:
          T:
            run: "make"
            matrix:
              os: [linux, mac]
              py: ["3.11", "3.12", 3.13]
              exclude: [{os: mac}, {py: "3.11"}]
              include: [{os: mac, py: "3.12"}]
    """
    wf = load(tmp_path, text)
    assert list(wf.tasks) == ["T[os=linux,py=3.12]", "T[os=linux,py=3.13]", "T[os=mac,py=3.12]"]


def test_for_each_values_are_matrix_item_and_numbers_and_booleans_read_as_written(
    tmp_path: Path,
) -> None:
    text = """
        tasks:
          T: {for_each: [auth, 8080, true], run: "echo {{ matrix.item }}", max_parallel: 2}
    """
    wf = load(tmp_path, text)
    tasks = list(wf.tasks.values())
    assert [t.id for t in tasks] == ["T[auth]", "T[8080]", "T[true]"]
    assert [t.run for t in tasks] == ["echo auth", "echo 8080", "echo true"]
    assert {(t.template, t.max_parallel) for t in tasks} == {("T", 2)}


def test_matrix_values_are_filled_into_every_listed_field(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("Work on {{ matrix.m }}; later {{ tasks.A.outputs.x }}.\n")
    text = """
        tasks:
          A: {run: "true"}
          T:
            matrix: {m: [auth]}
            title: "Title {{ matrix.m }}"
            agent: claude
            prompt_file: p.md
            env: {MODULE: "{{matrix.m}}", KEEP: "${HOME}"}
            inputs: ["src/{{ matrix.m }}/in.txt"]
            outputs: ["out/{{ matrix.m }}.txt"]
            touches: ["src/{{ matrix.m }}/**"]
            depends_on: [A]
            validate:
              - run: "pytest tests/{{ matrix.m }}"
              - exists: ["docs/{{ matrix.m }}.md"]
              - contains: {path: "out/{{ matrix.m }}.txt", pattern: "^{{ matrix.m }}$"}
          S: {for_each: [x], run: "make {{ matrix.item }}", depends_on: [A]}
    """
    wf = load(tmp_path, text)
    t = wf.tasks["T[m=auth]"]
    assert t.title == "Title auth"
    assert t.env == {"MODULE": "auth", "KEEP": "${HOME}"}
    assert (t.inputs, t.outputs, t.touches) == (
        ("src/auth/in.txt",),
        ("out/auth.txt",),
        ("src/auth/**",),
    )
    assert t.validate[0].run == "pytest tests/auth"
    assert t.validate[1].paths == ("docs/auth.md",)
    assert (t.validate[2].path, t.validate[2].pattern) == ("out/auth.txt", "^auth$")
    assert isinstance(t.validate[0], Validator) and t.validate[0].loc is not None
    # the prompt file's text is filled in when it is read; run-time references stay
    text = read_prompt_file(wf, t)
    assert text == "Work on auth; later {{ tasks.A.outputs.x }}.\n"
    assert wf.tasks["S[x]"].run == "make x"


def test_dependents_fan_in_on_every_expansion_or_on_the_one_they_name(tmp_path: Path) -> None:
    text = """
        groups:
          A: {}
          B: {depends_on: [A]}
        tasks:
          T: {matrix: {m: [a, b]}, run: "echo {{ matrix.m }}", group: A}
          all: {run: "true", depends_on: [T]}
          one: {run: "true", depends_on: ["T[m=b]"]}
          later: {run: "true", group: B}
    """
    wf = load(tmp_path, text)
    tasks = wf.tasks
    assert tasks["all"].deps == ("T[m=a]", "T[m=b]")
    assert tasks["all"].depends_on == ("T",)  # as written, for the graph
    assert tasks["one"].deps == ("T[m=b]",)
    assert tasks["later"].deps == ("T[m=a]", "T[m=b]")  # through the groups
    assert wf.group_tasks("A") == ["T[m=a]", "T[m=b]"]


def test_a_cycle_through_one_expansion_is_found(tmp_path: Path) -> None:
    text = """
        tasks:
          T: {matrix: {m: [a, b]}, run: "true", depends_on: [U]}
          U: {run: "true", depends_on: ["T[m=a]"]}
    """
    found = problems(tmp_path, text)
    assert len(found) == 1 and "dependency cycle: T -> U -> T" in found[0]
    text = """
        tasks:
          T: {matrix: {m: [a]}, run: "true", depends_on: ["T[m=a]"]}
    """
    found = problems(tmp_path, text)
    assert len(found) == 1 and "task `T` depends on itself" in found[0]


def test_placeholders_in_a_prompt_file_are_checked_too(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("Work on {{ matrix.modul }}.\n")
    text = """
        tasks:
          T: {matrix: {module: [a]}, agent: claude, prompt_file: p.md}
    """
    (found,) = problems(tmp_path, text)
    assert ":5:58: tasks.T.prompt_file: prompt file `p.md`: `{{ matrix.modul }}`" in found
    assert "did you mean `module`?" in found


def test_other_text_in_braces_is_left_alone(tmp_path: Path) -> None:
    text = """
        tasks:
          T: {for_each: [a], run: "echo '{{ not.a.ref }}' {{ matrix.item }} ${{ x }}"}
    """
    wf = load(tmp_path, text)
    assert wf.tasks["T[a]"].run == "echo '{{ not.a.ref }}' a ${{ x }}"


def test_views_group_expansions_under_their_template(tmp_path: Path) -> None:
    text = """
        tasks:
          A: {run: "true"}
          T: {for_each: [a, b], run: "true"}
          B: {run: "true", depends_on: [T, A]}
    """
    wf = load(tmp_path, text)
    ids = list(wf.tasks)
    assert list(by_template(wf, ids)) == [(None, ["A"]), ("T", ["T[a]", "T[b]"]), (None, ["B"])]
    assert collapse(wf, ["T[a]", "T[b]", "A"]) == ["T", "A"]
    assert collapse(wf, ["T[b]", "A"]) == ["T[b]", "A"]
    assert expansions(wf) == {"T": ["T[a]", "T[b]"]}


# -- branch-safe names -------------------------------------------------------------------


def test_names_are_readable_when_they_can_be_and_hashed_when_they_must() -> None:
    assert task_component("T1") == "T1"  # plain ids are used as written
    assert task_component("T5[module=auth]") == "T5-module-auth"
    assert task_component("T5[module=auth,py=3.12]") == "T5-module-auth-py-3.12"
    assert task_component("T5[auth]") == "T5-auth"
    spaced, dashed = task_component("T5[m=a b]"), task_component("T5[m=a-b]")
    assert spaced.startswith("T5-m-a-b-") and dashed.startswith("T5-m-a-b-")
    assert spaced != dashed  # the hash keeps apart what the readable part cannot
    assert len(task_component("T5[m=" + "x" * 500 + "]")) < 100


@settings(max_examples=300, deadline=None)
@given(template=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,10}", fullmatch=True),
       values=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=3))  # fmt: skip
def test_every_expansion_name_is_a_valid_branch_component(template: str, values: list[str]) -> None:
    if component_problem(template) is not None:
        return  # refused as a task id already
    task_id = f"{template}[{','.join(f'k{i}={v}' for i, v in enumerate(values))}]"
    name = task_component(task_id)
    assert ref_problem(f"conductor/x.attempts/run/{name}/1") is None
    assert "/" not in name and component_problem(name) is None
    assert task_component(name) == name  # stable when read back from a branch
