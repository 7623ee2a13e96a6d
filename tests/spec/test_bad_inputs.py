"""Every bad workflow in tests/bad/ is refused with one located, actionable diagnostic."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conductor.errors import Diagnostic, SpecError, UserError
from conductor.spec.load import load_workflow, spec_problems
from tests.testing.paths import BAD

GOOD = BAD.parent / "good" / "full.yaml"
# Replacements for one character of the good file: YAML punctuation, anchors, ids, junk.
MUTATIONS = ["", "[", "]", "{", "}", ":", "-", "&a ", "*a", "<<: *common\n", "\t", "\n", "'",
             " T1", "x", "0", "..", "${", "\n  T9: {}\n"]  # fmt: skip

# file -> (line, col, message substring, hint substring or None)
CASES: dict[str, tuple[int | None, int | None, str, str | None]] = {
    "agent_preset_and_command": (6, 5, "agents.mine: `preset` and `command` cannot be used", None),
    "approve_not_boolean": (4, 35, "tasks.T1.approve: expected true or false, got a string",
                            "without quotes"),
    "bad_budget": (3, 15, "budget.usd: must be greater than 0, got 0", None),
    "bad_concurrency": (3, 14, "concurrency: must be at least 1, got 0", None),
    "bad_duration": (6, 14, "T1.timeout: '5 minutes' is not a duration: use 90s, 20m", None),
    "bad_duration_fraction": (4, 17, "idle_timeout: '1.5h' is not a duration: use 90s", None),
    "bad_env_ref": (6, 18, "tasks.T1.env.TOKEN: malformed variable reference `${MY TOKEN}`", None),
    "bad_hook_event": (4, 3, "on: unknown key `task_faild`", "did you mean `task_failed`?"),
    "bad_integration_branch": (3, 21, "not a valid branch name: it contains a space", None),
    "bad_keep_policy": (3, 19, "workspace.keep: 'sometimes' is not one of always", None),
    "reuse_keep_escapes": (4, 18, "workspace.reuse.keep[0]: `../cache` leads outside", "`node_modules`"),
    "reuse_without_key": (4, 10, "workspace.reuse: missing required key `key`", None),
    "bad_name": (2, 7, "name: invalid value 'Phase 5'", "lowercase letters"),
    "bad_priority": (6, 15, "tasks.T1.priority: 'urgent' is not one of high, normal, low", None),
    "bad_regex": (7, 42, "contains.pattern: invalid regular expression", None),
    "bad_strategy": (3, 11, "strategy: 'wave' is not one of waves, eager", "`waves`"),
    "bad_trigger": (5, 54, "trigger: 'always' is not one of all_success, all_done", None),
    "bad_task_id": (4, 3, "tasks: invalid task id `T 1`", "letters, digits"),
    "bad_version": (1, 10, "version: must be 1, got 2", None),
    "billion_laughs": (1, 1, "YAML aliases expand to too many nodes", None),
    "contains_escapes": (7, 26, "contains.path: `../other/README.md` leads outside", "worktree"),
    "copy_absolute": (4, 16, "copy[1]: `/home/me/.aws/credentials` is an absolute", "root"),
    "cycle_groups": (4, 20, "groups.A.depends_on[0]: group cycle: A -> B -> A", None),
    "cycle_tasks": (4, 32, "dependency cycle: T1 -> T3 -> T2 -> T1", None),
    "cycle_via_group": (7, 42, "dependency cycle: T1 -> T2 -> T1", "group `B` depends on `A`"),
    "depends_on_string": (5, 31, "tasks.T2.depends_on: expected a list, got a string", "[T1]"),
    "duplicate_dependency": (5, 31, "tasks.T2.depends_on: lists `T1` more than once", None),
    "duplicate_key_nested": (7, 5, "duplicate key `title` (first defined at line 5)", None),
    "duplicate_task_key": (6, 3, "tasks: duplicate key `T1` (first defined at line 4)", None),
    "empty": (None, None, "workflow file is empty", "version: 1"),
    "env_not_string": (7, 13, "tasks.T1.env.PORT: expected a string, got an integer", '"8080"'),
    "exists_absolute": (7, 29, "exists[1]: `/etc/passwd` is an absolute", "`/tmp/out.txt`"),
    "fallback_loop": (4, 33, "agent fallbacks form a loop: a1 -> a2 -> a1", None),
    "gate_exists_escapes": (6, 18, "groups.A.validate[0].exists[0]: `../elsewhere`", None),
    "glob_escapes": (6, 15, "`build/*/../../../*.txt` leads outside the worktree", None),
    "group_self_dependency": (4, 20, "group `A` depends on itself", None),
    "hook_not_list": (4, 17, "on.run_finished: expected a list", "write a list"),
    "id_ends_with_lock": (5, 3, "`index.lock` cannot be used in a branch name", None),
    "id_with_dotdot": (4, 3, "`build..api` cannot be used in a branch name: it contains", None),
    "input_escapes": (7, 9, "tasks.T1.inputs[0]: `../secrets.txt` leads outside", None),
    "log_absolute": (3, 6, "log: `/tmp/EXECUTION_LOG.md` is an absolute path", "repository root"),
    "log_escapes": (3, 6, "log: `logs/../../outside.md` leads outside the repository", "logs/"),
    "log_inside_git": (3, 6, "log: `.git/HEAD` is inside `.git`", "git's own data"),
    "matrix_all_excluded": (5, 5, "tasks.T5.matrix: no combination is left", "`exclude:`"),
    "matrix_and_for_each": (6, 5, "`matrix` and `for_each` cannot be used together", "item"),
    "matrix_bad_key": (5, 14, "tasks.T5.matrix: invalid matrix key `my.module`", "letters"),
    "matrix_duplicate_value": (6, 31, "module[2]: `auth` is listed twice", "remove"),
    "matrix_empty_list": (5, 22, "module: an empty list expands to no tasks", "at least one"),
    "matrix_exclude_unknown_key": (7, 18, "unknown matrix key `modul`", "did you mean `module`?"),
    "matrix_ids_collide": (6, 23, "`T5[module=auth]` and `T5-module-auth` would both", "rename"),
    "matrix_include_twice": (9, 11, "include[1]: adds `T5[module=docs]` a second time", "remove"),
    "matrix_max_parallel_zero": (6, 19, "tasks.T5.max_parallel: must be at least 1, got 0", None),
    "matrix_not_a_list": (5, 22, "matrix.module: expected a list, got a string", "[auth]"),
    "matrix_path_escapes": (7, 15, "in `T5[../..]`: `build/../../report.txt` leads outside",
                            "worktree"),
    "matrix_unknown_expansion": (7, 38, "unknown task `T5[module=auht]`", "`T5[module=auth]`"),
    "matrix_unknown_key": (6, 10, "`{{ matrix.modul }}`: the matrix has no key", "`module`"),
    "matrix_without_matrix": (5, 10, "is used in a task without `matrix:`", "add `matrix:`"),
    "max_parallel_without_matrix": (5, 5, "`max_parallel` needs `matrix` or `for_each`", "caps"),
    "missing_prompt_file": (5, 18, "prompt file `prompts/does-not-exist.md` does not exist", None),
    "missing_tasks": (1, 1, "missing required key `tasks`", None),
    "multiple_documents": (5, 1, "expected a single document in the stream", None),
    "name_with_dotdot": (2, 7, "'phase..5' cannot be used in a branch name", None),
    "negative_retries": (4, 28, "tasks.T1.retries: must be at least 0, got -1", None),
    "no_prompt": (4, 3, "tasks.T1: needs one of `prompt`, `prompt_file` or `run`", "`run:`"),
    "no_tasks": (3, 8, "tasks: must not be empty", None),
    "output_absolute": (6, 30, "tasks.T1.outputs[1]: `/tmp/out.txt` is an absolute", "worktree"),
    "output_inside_git": (6, 15, "outputs[0]: `.git/config` is inside `.git`", "git's own"),
    "output_key_undeclared": (8, 15, "fix reads output `cuont` of task scan, which does not",
                              "did you mean `count`?"),
    "output_ref_not_upstream": (5, 21, "task fix reads output `count` of task scan, which is "
                                "not upstream of fix", "add `scan` to `depends_on` of fix"),
    "output_ref_unknown_task": (4, 22, "fix reads output `count` of unknown task `scna`",
                                "did you mean `scan`?"),
    "policy_unknown": (3, 9, "policy: 'lifo' is not one of default, fifo, cost-aware",
                       "did you mean `fifo`?"),
    "pool_bad_executor": (4, 29, "pools.gpu.executor: 'k8s' is not one of local, ray", None),
    "pool_profile_unknown": (4, 39, "agents.claude.pool: unknown pool `seatz`",
                             "did you mean `seats`?"),
    "pool_skill_not_offered": (9, 36, "tasks.T1.skills[1]: pool `seats` (named by "
                               "agents.claude.pool) does not offer skill `database`",
                               "offered by `db`: write `pool: db`"),
    "pool_skill_nowhere": (6, 27, "tasks.T1.skills: no pool offers `rust`", "pools: {mine:"),
    "pool_unknown": (5, 25, "tasks.T1.pool: unknown pool `seat`", "did you mean `seats`?"),
    "prompt_and_run": (6, 5, "`prompt` and `run` cannot be used together", None),
    "prompt_file_absolute": (5, 18, "prompt file `/etc/hostname` is an absolute path", "directory"),
    "prompt_is_boolean": (4, 16, "tasks.T1.prompt: expected a string, got a boolean", "quote"),
    "prompt_with_shell_agent": (6, 5, "agent `shell` runs shell commands", "`run:`"),
    "recursive_alias": (4, 7, "a YAML alias refers to itself", None),
    "run_with_agent": (6, 5, "`run` needs a shell agent; `claude` is a claude-code", "shell"),
    "sandbox_bad_network": (4, 38, "tasks.T1.sandbox.network: invalid value 'nothing'",
                            "none (only the sandbox's own loopback)"),
    "sandbox_endpoint_no_port": (6, 46, "sandbox.network[1]: `localhost` has no port",
                                 "host:port"),
    "sandbox_other_users_home": (4, 41, "`~bob/.ssh`: only the agent's own home", "~/.cache/x"),
    "sandbox_path_in_two_lists": (8, 19, "read_deny[0]: `~/.config/gh/` is also in "
                                  "tasks.T1.sandbox.read_only", "name each path in one list"),
    "sandbox_port_out_of_range": (5, 15, "the port must be a number from 1 to 65535",
                                  "127.0.0.1:8080"),
    "sandbox_relative_path": (6, 40, "agents.c.sandbox.read_write[1]: `build/cache` is a "
                              "relative path", "absolute"),
    "sandbox_unknown_key": (4, 29, "tasks.T1.sandbox: unknown key `netwrok`",
                            "did you mean `network`?"),
    "secrets_bad_name": (3, 22, "secrets[1]: invalid value 'my token'", None),
    "self_dependency": (4, 32, "task `T1` depends on itself", None),
    "symlink_escapes": (4, 13, "symlink[0]: `../node_modules` leads outside", "root"),
    "tab_indent": (5, 1, "YAML syntax error", "tabs"),
    "top_level_list": (1, 1, "the top level must be a mapping", None),
    "trigger_without_deps": (4, 35, "`one_failed` waits for a failure among the task's",
                             "add `depends_on`"),
    "unknown_agent": (4, 26, "tasks.T1.agent: unknown agent `claud`", "did you mean `claude`?"),
    "unknown_default_agent": (3, 19, "unknown agent `codx`", "did you mean `codex`?"),
    "unknown_dependency": (5, 33, "unknown task `setup-db`", "did you mean `setup_db`?"),
    "unknown_fallback": (4, 35, "agents.fast.fallback: unknown agent `claud`", "`claude`"),
    "unknown_group": (6, 26, "tasks.T1.group: unknown group `bakend`", "`backend`"),
    "unknown_group_dependency": (5, 27, "unknown group `backnd`", "did you mean `backend`?"),
    "unknown_key_typo": (7, 5, "tasks.T2: unknown key `depend_on`", "did you mean `depends_on`?"),
    "unknown_preset": (4, 18, "'claude-cod' is not one of claude-code", "`claude-code`"),
    "unknown_top_level_key": (3, 1, "unknown key `concurency`", "did you mean `concurrency`?"),
    "unsupported_tag": (4, 16, "unsupported YAML tag", None),
    "validator_timeout_without_run": (8, 9, "validate[0]: `timeout` needs `run`", None),
    "validator_two_kinds": (8, 9, "`run` and `exists` cannot be used together", None),
    "validator_unknown_kind": (7, 9, "unknown key `exsts`", "did you mean `exists`?"),
    "when_code": (5, 49, "tasks.fix.when: invalid condition: unexpected `__import__`",
                  "conditions have no functions"),
    "when_not_upstream": (8, 7, "task report reads the state of task scan, which is not "
                          "upstream of report", "add `scan` to `depends_on` of report"),
    "when_syntax_error": (7, 37, "tasks.fix.when: invalid condition: unexpected character '='",
                          "`==`"),
    "when_unknown_task": (5, 49, "task fix reads the state of unknown task `scna`",
                          "did you mean `scan`?"),
    "yaml_syntax_error": (6, 4, "YAML syntax error: did not find expected key", "line 4"),
}


def problems_of(path: Path) -> list[Diagnostic]:
    with pytest.raises(SpecError) as caught:
        load_workflow(path)
    return caught.value.diagnostics


def test_corpus_and_table_match() -> None:
    on_disk = {p.stem for p in BAD.glob("*.yaml")}
    assert on_disk == set(CASES)
    assert len(on_disk) >= 34


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_file_is_refused_with_a_located_message(name: str) -> None:
    line, col, message, hint = CASES[name]
    path = BAD / f"{name}.yaml"
    problems = problems_of(path)
    assert len(problems) == 1, [p.render() for p in problems]
    problem = problems[0]
    assert problem.path == str(path)  # the path as the caller gave it
    assert (problem.line, problem.col) == (line, col), problem.render()
    assert message in problem.message
    if hint is None:
        assert problem.hint is None or "did you mean" not in problem.hint
    else:
        assert problem.hint is not None and hint in problem.hint


def test_relative_path_is_reported_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BAD.parent)
    (problem,) = problems_of(Path("bad/unknown_dependency.yaml"))
    assert problem.render() == (
        "bad/unknown_dependency.yaml:5:33: tasks.api.depends_on[0]: unknown task `setup-db`\n"
        "  hint: did you mean `setup_db`?"
    )


def test_all_problems_of_a_file_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "version: 1\n"
        "name: many\n"
        "concurency: 3\n"  # typo
        "tasks:\n"
        "  T1: {prompt: a, priority: urgent}\n"  # bad enum
        "  T2: {prompt: b, depends_on: [T9]}\n"  # unknown task
        "  T3: {prompt: c, depends_on: [T4], timeout: 5 mins}\n"  # bad duration
        "  T4: {prompt: d, depends_on: [T3]}\n"  # cycle T3 -> T4 -> T3
        "  T5: {prompt: e, run: make}\n"  # two bodies
    )
    problems = problems_of(path)
    where = [(p.line, p.col) for p in problems]
    assert where == sorted(where), "problems are listed in file order"
    text = "\n".join(p.render() for p in problems)
    for expected in (
        "3:1: unknown key `concurency`",
        "5:29: tasks.T1.priority: 'urgent' is not one of",
        "6:32: tasks.T2.depends_on[0]: unknown task `T9`",
        "7:46: tasks.T3.timeout: '5 mins' is not a duration",
        "dependency cycle: T3 -> T4 -> T3",
        "9:19: tasks.T5.run: `prompt` and `run` cannot be used together",
    ):
        assert expected in text
    assert len(problems) == 6
    assert SpecError(problems).render().endswith("6 problems found")


def test_problems_are_capped(tmp_path: Path) -> None:
    tasks = "".join(f"  T{i}: {{prompt: p, depends_on: [missing{i}]}}\n" for i in range(80))
    path = tmp_path / "capped.yaml"
    path.write_text(f"version: 1\nname: capped\ntasks:\n{tasks}")
    assert len(problems_of(path)) == 50


def test_not_utf8_names_the_offending_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("version: 1\nname: x\ntasks:\n  T1: {prompt: caf\xe9}\n".encode("latin-1"))
    (problem,) = problems_of(path)
    assert "not valid UTF-8" in problem.message and "0xe9" in problem.message
    assert (problem.line, problem.col) == (4, 19)


def test_file_over_5_mib_is_refused_without_parsing(tmp_path: Path) -> None:
    # CPU time (process_time) throughout: the suite shares 2 cores among 4 workers
    path = tmp_path / "huge.yaml"
    path.write_text("version: 1\nname: huge\n" + "# padding\n" * 600_000)
    started = time.process_time()
    (problem,) = problems_of(path)
    assert "larger than 5 MiB" in problem.message
    assert time.process_time() - started < 1.0


def test_billion_laughs_fails_fast() -> None:
    started = time.process_time()
    (problem,) = problems_of(BAD / "billion_laughs.yaml")
    assert "too many nodes" in problem.message
    assert time.process_time() - started < 3.0  # ~0.3 s here; generous for slow CI


def test_deep_flow_nesting_is_refused_not_crashed(tmp_path: Path) -> None:
    # libyaml would overflow the C stack on this; the loader must refuse it cleanly.
    path = tmp_path / "deep.yaml"
    path.write_text("version: 1\nname: deep\ntasks: " + "[" * 20_000 + "]" * 20_000 + "\n")
    (problem,) = problems_of(path)
    assert "nesting" in problem.message


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(UserError, match="no such file") as caught:
        load_workflow(missing)
    assert not isinstance(caught.value, SpecError)
    assert spec_problems(missing)[0].message.startswith("no such file")


def test_directory_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a directory"):
        load_workflow(tmp_path)


def test_spec_problems_lists_without_raising() -> None:
    assert [p.line for p in spec_problems(BAD / "cycle_tasks.yaml")] == [4]
    assert spec_problems(BAD.parent / "good" / "full.yaml") == []


@settings(max_examples=150, deadline=None)
@given(edits=st.lists(st.tuples(st.floats(0, 1), st.sampled_from(MUTATIONS)), max_size=4))
def test_random_edits_never_escape_as_tracebacks(
    tmp_path_factory: pytest.TempPathFactory, edits: list[tuple[float, str]]
) -> None:
    """Bad input is always a SpecError with located messages, never a crash."""
    text = GOOD.read_text()
    for where, insert in edits:
        at = int(where * len(text))
        text = text[:at] + insert + text[at + 1 :]
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "prompts").mkdir()
    (folder / "prompts" / "T2.md").write_text("seed\n")
    path = folder / "wf.yaml"
    path.write_text(text)
    try:
        load_workflow(path)
    except SpecError as exc:
        assert all(d.message and (d.line is None or d.line >= 1) for d in exc.diagnostics)
