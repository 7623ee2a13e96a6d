"""Output gates on real worktrees: each kind passes and fails, every problem is reported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conductor.run.validators import (
    CheckEnv,
    CheckResult,
    check_inputs,
    run_checks,
    run_gate,
    summarize_failures,
)
from conductor.spec.model import Task, Validator
from tests.testing.repos import make_repo


@pytest.fixture
def wt(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "wt",
        {
            "db/schema.sql": "-- schema\nCREATE TABLE users (id int);\n",
            "src/app.py": "import os\n\ndef main():\n    pass\n",
            "docs/spec.md": "spec\n",
        },
    )


ENV = {"PATH": os.environ["PATH"]}


def check(wt: Path, v: Validator, changed: tuple[str, ...] = ("x",)) -> CheckResult:
    [result] = run_checks(Task(id="T", validate=(v,)), wt, changed, CheckEnv(ENV))
    return result


def run_v(cmd: str, timeout_s: float | None = None) -> Validator:
    return Validator(kind="run", run=cmd, timeout_s=timeout_s)


# ---------------------------------------------------------------- each kind


def test_run_passes_on_exit_zero_in_the_worktree_with_env(wt: Path) -> None:
    res = run_checks(
        Task(id="T", validate=(run_v('test -f db/schema.sql && echo "in $PWD as $WHO"'),)),
        wt,
        [],
        CheckEnv({**ENV, "WHO": "tester"}),
    )
    assert res == [CheckResult(res[0].name, True, f"in {wt} as tester", res[0].duration_s)]
    assert res[0].name == 'run: test -f db/schema.sql && echo "in $PWD as $WHO"'


def test_run_fails_with_its_output_and_exit_code(wt: Path) -> None:
    res = check(wt, run_v("echo 'assert 1 == 2 failed'; exit 4"))
    assert not res.ok
    assert res.output == "assert 1 == 2 failed\nexit code 4"


def test_run_output_is_capped_to_the_last_lines(wt: Path) -> None:
    res = check(wt, run_v("seq 1 1000; exit 1"))
    lines = res.output.splitlines()
    assert lines[0] == "801" and lines[-2:] == ["1000", "exit code 1"]


def test_run_times_out(wt: Path) -> None:
    res = check(wt, run_v("echo working; sleep 30", timeout_s=0.3))
    assert not res.ok and res.duration_s < 5
    assert res.output == "working\ntimed out after 0.3s"


def test_run_default_timeout_applies(wt: Path) -> None:
    task = Task(id="T", validate=(run_v("sleep 30"),))
    [res] = run_checks(task, wt, [], CheckEnv(ENV, timeout_s=0.3))
    assert not res.ok and "timed out" in res.output


def test_run_output_is_redacted(wt: Path) -> None:
    task = Task(id="T", validate=(run_v("echo key=s3cret; exit 1"),))
    [res] = run_checks(task, wt, [], CheckEnv(ENV, redact=lambda s: s.replace("s3cret", "***")))
    assert "s3cret" not in res.output and "key=***" in res.output


def test_exists_accepts_paths_and_globs(wt: Path) -> None:
    assert check(wt, Validator(kind="exists", paths=("db/schema.sql", "src/*.py"))).ok
    assert check(wt, Validator(kind="exists", paths=("**/*.sql",))).ok
    res = check(wt, Validator(kind="exists", paths=("db/schema.sql", "db/missing.sql", "x/*.py")))
    assert not res.ok
    assert res.name == "exists: db/schema.sql, db/missing.sql, x/*.py"
    assert res.output == "missing: db/missing.sql, x/*.py"


def test_contains_matches_multiline_regex(wt: Path) -> None:
    assert check(wt, Validator(kind="contains", path="src/app.py", pattern=r"^def main\(")).ok
    res = check(wt, Validator(kind="contains", path="db/schema.sql", pattern="CREATE INDEX"))
    assert not res.ok and res.output == "db/schema.sql does not match /CREATE INDEX/"
    assert res.name == "contains: db/schema.sql =~ /CREATE INDEX/"


def test_contains_on_missing_file_or_bad_pattern_fails_with_reason(wt: Path) -> None:
    res = check(wt, Validator(kind="contains", path="db/nope.sql", pattern="x"))
    assert not res.ok and res.output == "missing file: db/nope.sql"
    res = check(wt, Validator(kind="contains", path="db/schema.sql", pattern="("))
    assert not res.ok and res.output.startswith("invalid pattern /(/")


def test_changes_counts_changed_files(wt: Path) -> None:
    v = Validator(kind="changes", min_files=2)
    assert check(wt, v, ("a", "b")).ok
    res = check(wt, v, ("a",))
    assert (res.name, res.ok) == ("changes: >= 2", False)
    assert res.output == "1 file(s) changed, at least 2 required"


# ---------------------------------------------------------------- implicit checks


def test_outputs_must_exist(wt: Path) -> None:
    ok = run_checks(Task(id="T", outputs=("db/schema.sql", "src/*.py")), wt, [], CheckEnv(ENV))
    assert [(r.name, r.ok) for r in ok] == [("outputs", True)]
    [bad] = run_checks(Task(id="T", outputs=("db/schema.sql", "db/seed.sql")), wt, [], CheckEnv(ENV))
    assert not bad.ok and bad.output == "missing output(s): db/seed.sql"


def test_touches_lists_every_path_outside_the_scope(wt: Path) -> None:
    task = Task(id="T", touches=("db/**", "tests/db/**"))
    changed = ["db/schema.sql", "src/app.py", "tests/db/t.py", "README.md"]
    [res] = run_checks(task, wt, changed, CheckEnv(ENV))
    assert (res.name, res.ok) == ("touches", False)
    assert "  src/app.py\n  README.md" in res.output
    assert "db/schema.sql" not in res.output.splitlines()[1:]
    [inside] = run_checks(task, wt, ["db/a.sql"], CheckEnv(ENV))
    assert inside.ok


def test_no_outputs_validators_or_touches_means_no_checks(wt: Path) -> None:
    assert run_checks(Task(id="T"), wt, ["anything/at/all"], CheckEnv(ENV)) == []


def test_inputs(wt: Path) -> None:
    assert check_inputs(Task(id="T"), wt) is None
    ok = check_inputs(Task(id="T", inputs=("docs/spec.md", "db/*.sql")), wt)
    assert ok is not None and ok.ok and ok.name == "inputs"
    bad = check_inputs(Task(id="T", inputs=("docs/spec.md", "docs/api.md")), wt)
    assert bad is not None and not bad.ok and bad.output == "missing input(s): docs/api.md"


# ---------------------------------------------------------------- all together


def test_every_check_runs_and_failures_are_summarized(wt: Path) -> None:
    task = Task(
        id="T",
        outputs=("db/seed.sql",),
        validate=(
            run_v("echo boom; exit 1"),
            Validator(kind="exists", paths=("db/schema.sql",)),
            Validator(kind="contains", path="src/app.py", pattern="TODO"),
            Validator(kind="changes", min_files=5),
        ),
        touches=("db/**",),
    )
    results = run_checks(task, wt, ["db/schema.sql", "src/app.py"], CheckEnv(ENV))
    assert [(r.name, r.ok) for r in results] == [
        ("outputs", False),
        ("run: echo boom; exit 1", False),
        ("exists: db/schema.sql", True),
        ("contains: src/app.py =~ /TODO/", False),
        ("changes: >= 5", False),
        ("touches", False),
    ]
    summary = summarize_failures(results)
    assert summary.splitlines()[0] == "5 check(s) failed:"
    for part in ("- outputs", "db/seed.sql", "- run: echo boom", "    boom", "src/app.py"):
        assert part in summary
    assert "exists" not in summary
    assert summarize_failures([r for r in results if r.ok]) == ""


def test_summary_keeps_the_tail_of_long_output() -> None:
    long = CheckResult("run: x", False, "\n".join(str(i) for i in range(100)), 0.1)
    lines = summarize_failures([long], max_lines=5).splitlines()
    assert lines[2] == "    ... (95 earlier line(s) omitted)"
    assert lines[-1] == "    99"


def test_gate_runs_on_a_checkout_and_skips_changes(wt: Path) -> None:
    gate = (
        run_v("test -f db/schema.sql"),
        Validator(kind="changes", min_files=3),
        Validator(kind="exists", paths=("nothing.txt",)),
    )
    results = run_gate(gate, wt, CheckEnv(ENV))
    assert [(r.name, r.ok) for r in results] == [
        ("run: test -f db/schema.sql", True),
        ("changes: >= 3", True),
        ("exists: nothing.txt", False),
    ]
    assert "skipped" in results[1].output
