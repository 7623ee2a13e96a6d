"""A duplicate key is reported together with the file's other problems, not alone first."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor.errors import SpecError
from conductor.spec.load import load_workflow
from tests.testing.runner import cli


def test_duplicate_keys_and_other_problems_come_together(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\n"
        "name: dup\n"
        "tasks:\n"
        "  T1: {prompt: a, priority: urgent}\n"  # bad enum
        "  T2: {prompt: b, depends_on: [T9]}\n"  # unknown task
        "  T1: {prompt: again}\n"  # duplicate task
        "  T3:\n"
        "    prompt: c\n"
        "    prompt: d\n"  # duplicate nested key
    )
    with pytest.raises(SpecError) as caught:
        load_workflow(path)
    got = [(p.line, p.message) for p in caught.value.diagnostics]
    assert [line for line, _ in got] == [4, 5, 6, 9], got
    text = "\n".join(m for _, m in got)
    assert "'urgent' is not one of" in text
    assert "unknown task `T9`" in text
    assert "tasks: duplicate key `T1` (first defined at line 4)" in text
    assert "tasks.T3: duplicate key `prompt` (first defined at line 8)" in text


def test_validate_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("version: 1\nname: dup\nname: again\nconcurency: 2\n"
                    "tasks:\n  T1: {prompt: a}\n")
    res = cli(tmp_path, "validate", str(path))
    assert res.returncode == 2
    assert f"{path}:3:1: duplicate key `name`" in res.stderr
    assert f"{path}:4:1: unknown key `concurency`" in res.stderr
    assert "Traceback" not in res.stderr
