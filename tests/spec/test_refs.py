"""What tasks read of each other is checked when the file is loaded, and every problem
points at the placeholder itself (in the YAML scalar, or in the prompt file)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conductor.errors import Diagnostic, SpecError
from conductor.spec.load import load_workflow
from conductor.spec.scalars import offset_position


def problems(tmp_path: Path, text: str, files: dict[str, str] | None = None) -> list[Diagnostic]:
    for name, body in (files or {}).items():
        (tmp_path / name).write_text(body)
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    with pytest.raises(SpecError) as caught:
        load_workflow(path)
    return caught.value.diagnostics


def test_upstream_through_tasks_and_groups_may_be_read(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        textwrap.dedent(
            """
            version: 1
            name: t
            groups:
              base: {}
              top: {depends_on: [base]}
            tasks:
              A: {run: "true", group: base, output_keys: [k]}
              B: {run: 'echo "{{ tasks.A.outputs.k }}"', group: top}
              C: {run: 'echo "{{ tasks.A.state }} {{ tasks.B.outputs.any }}"', depends_on: [B]}
              D: {prompt: "{{ env.HOME }} {{ not.a.context }} {{ matrix }}"}
            """
        ).lstrip()
    )
    wf = load_workflow(path)
    assert wf.tasks["A"].output_keys == ("k",)


def test_a_task_cannot_read_itself_or_a_task_downstream(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        version: 1
        name: t
        tasks:
          A: {run: 'echo "{{ tasks.A.outputs.k }} {{ tasks.B.state }}"'}
          B: {run: "true", depends_on: [A]}
        """,
    )
    shown = [(p.line, p.col, p.message) for p in found]
    assert shown == [
        (4, 19, "tasks.A.run: task A cannot read its own output `k`"),
        (4, 43, "tasks.A.run: task A reads the state of task B, which is not upstream of A"),
    ]


def test_a_placeholder_in_a_prompt_file_is_located_in_that_file(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        version: 1
        name: t
        tasks:
          A: {run: "true"}
          B: {prompt_file: b.md}
        """,
        {"b.md": "# B\n\nUse the value  {{ tasks.A.outputs.api }} here.\n"},
    )
    (p,) = found
    assert p.path == str(tmp_path / "b.md") and (p.line, p.col) == (3, 16)
    assert "prompt_file `b.md`: task B reads output `api` of task A, which is not" in p.message


def test_a_malformed_tasks_placeholder_is_refused(tmp_path: Path) -> None:
    (p,) = problems(
        tmp_path,
        """
        version: 1
        name: t
        tasks:
          A:
            env:
              X: "{{ tasks.B }}"
            run: "true"
        """,
    )
    assert (p.line, p.col) == (6, 11)
    assert "`{{ tasks.B }}` is not a reference conductor knows" in p.message


FILE = """\
tasks:
  A: {run: 'x {{ a }}'}
  B:
    prompt: |
      first
        second {{ b }}
  C: plain {{ c }}
  D: "esc\\"aped {{ d }}"
"""


@pytest.mark.parametrize(
    ("start", "value", "needle", "expected"),
    [
        ((2, 12), "x {{ a }}", "{{ a }}", (2, 15)),  # single-quoted
        ((4, 13), "first\n  second {{ b }}\n", "{{ b }}", (6, 16)),  # literal block
        ((7, 6), "plain {{ c }}", "{{ c }}", (7, 12)),  # plain
        ((8, 6), 'esc"aped {{ d }}', "{{ d }}", (8, 6)),  # an escape: the scalar's start
    ],
)
def test_offsets_map_to_the_file(
    start: tuple[int, int], value: str, needle: str, expected: tuple[int, int]
) -> None:
    assert offset_position(FILE, start, value, value.index(needle)) == expected


def test_a_condition_names_only_its_own_matrix_keys(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        version: 1
        name: t
        tasks:
          A:
            for_each: [x, y]
            when: "matrix.itme != 'x'"
            run: "true"
          B: {run: "true", depends_on: [A], when: "matrix.item == 'x'"}
        """,
    )
    shown = [(p.line, p.col, p.message, p.hint) for p in found]
    assert shown == [
        (6, 12, "tasks.A.when: `matrix.itme`: the matrix of A has no key `itme`",
         "did you mean `item`?"),
        (8, 44, "tasks.B.when: `matrix.item`: task B has no `matrix:` or `for_each:`",
         "a condition may name matrix keys only in a fan-out task"),
    ]  # fmt: skip
