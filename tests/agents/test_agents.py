"""Agent profiles (argv, env, instructions, fingerprint), output parsers and secrets.

No processes here: the fakes run end to end in test_fakes.py.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conductor.agents import profiles as agents
from conductor.agents.parsers import make_parser
from conductor.agents.profiles import InstructionContext
from conductor.errors import UserError
from conductor.spec.model import AgentProfile, Group, Loc, Task, Validator, Workflow, WorkspaceSpec
from conductor.spec.secrets import Secrets, collect_refs, resolve
from tests.testing.harness import launch, workflow


def wt(tmp_path: Path) -> Path:
    path = tmp_path / "wt"
    path.mkdir(exist_ok=True)
    return path


def prompt_arg(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


# ------------------------------------------------------------------------------------ argv


def test_claude_argv_is_headless_stream_json_with_the_whole_prompt_as_one_argument(
    tmp_path: Path,
) -> None:
    task = Task(id="T1", title="Schema", prompt="Create `db/schema.sql`; $(rm -rf /) stays text")
    wf = workflow(tmp_path, task)
    wf.agents["claude"] = AgentProfile(
        name="claude", preset="claude-code", model="opus", args=("--max-turns", "30")
    )
    argv = launch(wf, task, wt(tmp_path), resume="sess-42").argv
    assert argv[:2] == ["claude", "-p"]
    assert "$(rm -rf /) stays text" in argv[2] and "# Task T1: Schema" in argv[2]
    for pair in (["--output-format", "stream-json"], ["--model", "opus"], ["--resume", "sess-42"]):
        i = argv.index(pair[0])
        assert argv[i : i + 2] == pair
    assert "--verbose" in argv and "--dangerously-skip-permissions" in argv
    assert argv[-2:] == ["--max-turns", "30"]


def test_codex_argv_puts_every_option_before_resume_and_the_prompt_last(tmp_path: Path) -> None:
    task = Task(id="T1", agent="codex", prompt="do it")
    wf = workflow(tmp_path, task)
    wf.agents["codex"] = AgentProfile(name="codex", preset="codex", model="o3", args=("-c", "x=1"))
    fresh = launch(wf, task, wt(tmp_path)).argv
    assert fresh[:3] == ["codex", "exec", "--json"]
    assert prompt_arg(fresh, "-s") == "workspace-write" and "--skip-git-repo-check" in fresh
    assert prompt_arg(fresh, "-m") == "o3" and "resume" not in fresh
    assert fresh[-1].startswith("# Task T1")
    resumed = launch(wf, task, wt(tmp_path), resume="th-1").argv
    i = resumed.index("resume")
    assert resumed[i : i + 2] == ["resume", "th-1"] and i == len(resumed) - 3
    assert max(resumed.index("-s"), resumed.index("-m"), resumed.index("-c")) < i


def test_gemini_argv(tmp_path: Path) -> None:
    task = Task(id="T1", agent="gemini", prompt="do it")
    wf = workflow(tmp_path, task)
    wf.agents["gemini"] = AgentProfile(name="gemini", preset="gemini", model="gemini-2.5-pro")
    argv = launch(wf, task, wt(tmp_path), resume="g-1").argv
    assert argv[:2] == ["gemini", "-p"] and argv[2].startswith("# Task T1")
    assert "--yolo" in argv and prompt_arg(argv, "--output-format") == "stream-json"
    assert prompt_arg(argv, "-m") == "gemini-2.5-pro" and prompt_arg(argv, "--resume") == "g-1"


def test_aider_reads_the_instructions_file_and_keeps_its_own_files_out_of_the_worktree(
    tmp_path: Path,
) -> None:
    task = Task(id="T1", agent="aider", prompt="do it")
    wf = workflow(tmp_path, task)
    wf.agents["aider"] = AgentProfile(name="aider", preset="aider", model="gpt-4o")
    work = wt(tmp_path)
    argv = launch(wf, task, work).argv
    message = Path(prompt_arg(argv, "--message-file"))
    assert message.is_absolute() and message.read_text().startswith("# Task T1")
    for flag in ("--yes-always", "--no-auto-commits", "--no-gitignore", "--no-pretty"):
        assert flag in argv
    for flag in ("--input-history-file", "--chat-history-file"):
        assert work not in Path(prompt_arg(argv, flag)).parents
    assert prompt_arg(argv, "--model") == "gpt-4o"


def test_instructions_over_100kb_are_passed_as_a_reference_to_the_file(tmp_path: Path) -> None:
    task = Task(id="T1", prompt="x" * 120_000)
    lnch = launch(workflow(tmp_path, task), task, wt(tmp_path))
    prompt = lnch.argv[2]
    path = lnch.env["CONDUCTOR_INSTRUCTIONS"]
    assert len(prompt) < 500 and f"`{path}`" in prompt and Path(path).is_absolute()
    assert len(Path(path).read_text()) > 120_000


def test_shell_tasks_run_their_command_with_bash_whatever_the_default_agent(
    tmp_path: Path,
) -> None:
    task = Task(id="B", run="make build && echo ok")  # agent defaults to "claude"
    lnch = launch(workflow(tmp_path, task), task, wt(tmp_path))
    assert lnch.argv == ["bash", "-c", "make build && echo ok"]
    assert lnch.parser.result().ok is None


def test_agent_names_without_a_profile_fall_back_to_presets(tmp_path: Path) -> None:
    task = Task(id="T1", agent="codex", prompt="go")
    assert launch(workflow(tmp_path, task, agents_={}), task, wt(tmp_path)).argv[0] == "codex"
    bad = Task(id="T2", agent="nope", prompt="go")
    with pytest.raises(UserError, match="unknown agent profile 'nope'"):
        launch(workflow(tmp_path, bad, agents_={}), bad, wt(tmp_path))


def test_custom_command_fills_placeholders_and_leaves_other_braces_alone(
    tmp_path: Path,
) -> None:
    mine = AgentProfile(
        name="mine",
        command=("my-agent", "--prompt-file", "{prompt_file}", "--cwd", "{worktree}"),
        args=("--tag={task_id}/{run_id}/{attempt}", '--json={"a": {}}', "{unknown}", "{", "}{"),
    )
    task = Task(id="T9", agent="mine", prompt="go")
    work = wt(tmp_path)
    lnch = launch(workflow(tmp_path, task, agents_={"mine": mine}), task, work, attempt=3)
    argv = lnch.argv
    assert argv[:2] == ["my-agent", "--prompt-file"]
    assert argv[2] == lnch.env["CONDUCTOR_INSTRUCTIONS"] and argv[4] == str(work)
    assert argv[5:] == ["--tag=T9/run1/3", '--json={"a": {}}', "{unknown}", "{", "}{"]
    inline = dataclasses.replace(mine, command=("x", "{prompt}"), args=())
    argv = launch(workflow(tmp_path, task, agents_={"mine": inline}), task, work).argv
    assert argv[1].startswith("# Task T9")


def test_executable_names_the_program_to_look_for_on_path() -> None:
    cases = {"claude-code": "claude", "codex": "codex", "aider": "aider", "gemini": "gemini"}
    for preset, exe in {**cases, "shell": "bash"}.items():
        assert agents.executable(AgentProfile(name="p", preset=preset)) == exe
    custom = AgentProfile(name="p", command=("/opt/bin/agent", "{prompt_file}"))
    assert agents.executable(custom) == "/opt/bin/agent"


# ------------------------------------------------------------------------------------- env


def test_environment_has_conductor_vars_secrets_resolved_and_leaked_git_vars_stripped(
    tmp_path: Path,
) -> None:
    profile = AgentProfile(
        name="claude",
        preset="claude-code",
        env={"API_TOKEN": "${MY_TOKEN}", "MODE": "profile", "LITERAL": "$${MY_TOKEN}"},
    )
    task = Task(id="T1", prompt="go", env={"MODE": "task", "CONDUCTOR_TASK_ID": "forged"})
    base = {"PATH": "/usr/bin", "HOME": "/home/u", "GIT_DIR": "/elsewhere/.git"}
    base |= {"GIT_INDEX_FILE": "/x/index", "GIT_WORK_TREE": "/x", "CLAUDECODE": "1"}
    work = wt(tmp_path)
    env = launch(
        workflow(tmp_path, task, agents_={"claude": profile}),
        task,
        work,
        base_env=base,
        secrets=Secrets({"MY_TOKEN": "s3cr3t-value"}),
        attempt=2,
    ).env
    assert env["API_TOKEN"] == "s3cr3t-value" and env["LITERAL"] == "${MY_TOKEN}"
    assert env["MODE"] == "task"  # task env wins over profile env
    assert env["PATH"] == "/usr/bin" and env["HOME"] == "/home/u"
    assert not {"GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE", "CLAUDECODE"} & env.keys()
    assert env["CONDUCTOR_TASK_ID"] == "T1" and env["CONDUCTOR_RUN_ID"] == "run1"
    assert env["CONDUCTOR_ATTEMPT"] == "2" and env["CONDUCTOR_PORT"] == "4123"
    assert env["CONDUCTOR_WORKTREE"] == str(work)
    assert Path(env["CONDUCTOR_INSTRUCTIONS"]).read_text().startswith("# Task T1")


# ---------------------------------------------------------------------------- instructions


def full_workflow(tmp_path: Path) -> tuple[Workflow, Task]:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "T2.md").write_text("Build the service on top of the schema.\n")
    task = Task(
        id="T2",
        title="Service",
        group="CORE",
        role="backend engineer",
        prompt_file="prompts/T2.md",
        inputs=("docs/spec.md",),
        outputs=("svc/main.py",),
        deps=("T1",),
        validate=(
            Validator(kind="run", run="pytest -q tests/svc"),
            Validator(kind="contains", path="svc/main.py", pattern="def main"),
        ),
        touches=("svc/**", "tests/svc/**"),
    )
    wf = workflow(tmp_path, Task(id="T1", prompt="schema"), task)
    gate = Group(id="CORE", validate=(Validator(kind="run", run="make integration"),))
    wf = dataclasses.replace(wf, groups={"CORE": gate})
    return wf, task


def test_instructions_state_everything_the_agent_needs(tmp_path: Path) -> None:
    wf, task = full_workflow(tmp_path)
    failure = "FAILED tests/svc/test_main.py::test_x\n```\nassert 1 == 2\n```"
    ctx = InstructionContext(
        run_id="r-7",
        attempt=2,
        worktree=tmp_path / "wt",
        upstream=[("T1", "Schema", "changed: db/schema.sql (+10 -2)")],
        previous_failure=failure,
        conflict="merge conflict in svc/main.py with work merged meanwhile; integrate it",
    )
    text = agents.instructions(wf, task, ctx)
    expected = [
        "# Task T2: Service",
        "You are a backend engineer.",
        "Build the service on top of the schema.",
        "`docs/spec.md`",
        "`svc/main.py`",
        "`run: pytest -q tests/svc`",
        "`contains: svc/main.py =~ /def main/`",
        "`run: make integration`",
        "`svc/**`, `tests/svc/**`",
        "T1 (Schema): changed: db/schema.sql (+10 -2)",
        "merge conflict in svc/main.py",
        "branch `conductor/demo.attempts/r-7/T2/2`",
        "uncommitted is committed for you",
        "Do not switch branches",
        "`conductor progress PERCENT MESSAGE`",
    ]
    for part in expected:
        assert part in text, part
    # the failure is quoted verbatim inside a fence its own backticks cannot close
    assert f"````text\n{failure}\n````" in text


def test_instructions_for_a_missing_prompt_file_name_the_file(tmp_path: Path) -> None:
    task = Task(id="T1", prompt_file="prompts/missing.md")
    ctx = InstructionContext(run_id="r", attempt=1, worktree=tmp_path, upstream=[])
    with pytest.raises(UserError, match=r"missing\.md"):
        agents.instructions(workflow(tmp_path, task), task, ctx)


# ----------------------------------------------------------------------------- fingerprint


def test_fingerprint_tracks_what_defines_the_task_and_ignores_locations(tmp_path: Path) -> None:
    wf, task = full_workflow(tmp_path)
    base = agents.spec_fingerprint(wf, task)
    assert base == agents.spec_fingerprint(wf, task) and len(base) == 64

    moved = dataclasses.replace(task, loc=Loc("wf.yaml", 40, 3), priority="high", retries=5)
    assert agents.spec_fingerprint(wf, moved) == base  # location and scheduling only

    (tmp_path / "prompts" / "T2.md").write_text("Build it differently.\n")
    assert agents.spec_fingerprint(wf, task) != base
    (tmp_path / "prompts" / "T2.md").write_text("Build the service on top of the schema.\n")
    assert agents.spec_fingerprint(wf, task) == base

    changes = [
        dataclasses.replace(
            wf, agents={**wf.agents, "claude": AgentProfile(name="claude", preset="claude-code")}
        ),
        dataclasses.replace(wf, groups={"CORE": Group(id="CORE")}),
        dataclasses.replace(wf, workspace=WorkspaceSpec(setup=("npm ci",))),
    ]
    for changed in changes:
        assert agents.spec_fingerprint(changed, task) != base
    stricter = dataclasses.replace(task, validate=(Validator(kind="run", run="pytest -q"),))
    assert agents.spec_fingerprint(wf, stricter) != base


# -------------------------------------------------------------------------------- parsers

CLAUDE_SAMPLE = [
    '{"type":"system","subtype":"init","cwd":"/w","session_id":"9d9f07e1","tools":["Bash"],'
    '"model":"claude-sonnet-4","permissionMode":"bypassPermissions"}',
    "warning: some stderr noise",
    '{"type":"assistant","message":{"content":[{"type":"text","text":"Looking"},'
    '{"type":"tool_use","id":"t1","name":"Read","input":{"file_path":"/w/src/x.py"}}]},'
    '"session_id":"9d9f07e1"}',
    '{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1"}]}}',
    '{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t2","name":"Edit",'
    '"input":{"file_path":"/w/src/x.py","old_string":"a","new_string":"b"}}]}}',
    '{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t3","name":"Edit",'
    '"input":{"file_path":"/w/src/x.py"}}]}}',
    '{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t4","name":"Bash",'
    '"input":{"command":"pytest -q\\necho done","description":"Run tests"}}]}}',
    '{"type":"result","subtype":"success","is_err',
    '{"type":"result","subtype":"success","is_error":false,"duration_ms":5012,"num_turns":7,'
    '"result":"All done.","session_id":"9d9f07e1","total_cost_usd":0.1234,"usage":'
    '{"input_tokens":1200,"cache_creation_input_tokens":300,"cache_read_input_tokens":4000,'
    '"output_tokens":800}}',
]


def feed(kind: str, lines: list[str]) -> tuple[list[str], agents.AgentReport]:
    parser = make_parser(kind, Path("/w"))
    return [s for line in lines if (s := parser.feed(line))], parser.result()


def test_claude_stream_json_gives_steps_session_cost_and_tokens() -> None:
    steps, report = feed("claude-code", CLAUDE_SAMPLE)
    assert steps == ["Read src/x.py", "Edit src/x.py", "Bash: pytest -q"]
    assert report.ok is True and report.error is None and report.session_id == "9d9f07e1"
    assert report.cost_usd == pytest.approx(0.1234) and report.turns == 7
    assert report.tokens_in == 5500 and report.tokens_out == 800
    assert not report.rate_limited


def test_claude_error_results_and_usage_limits() -> None:
    _, report = feed(
        "claude-code",
        [
            '{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":30,'
            '"session_id":"s","total_cost_usd":2.5,"errors":["Reached maximum number of turns"]}'
        ],
    )
    assert report.ok is False and report.error == "Reached maximum number of turns"
    assert report.cost_usd == 2.5 and not report.rate_limited
    _, limited = feed(
        "claude-code",
        [
            '{"type":"rate_limit_event","rate_limit_info":{"status":"rejected",'
            '"resetsAt":1760000400,"rateLimitType":"five_hour"}}',
            '{"type":"result","subtype":"success","is_error":true,'
            '"result":"Claude AI usage limit reached|1760000400","session_id":"s"}',
        ],
    )
    assert limited.ok is False and limited.rate_limited and limited.reset_at == 1760000400.0


CODEX_SAMPLE = [
    '{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}',
    '{"type":"turn.started"}',
    '{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"**Plan**"}}',
    '{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":'
    '"bash -lc ls","aggregated_output":"","exit_code":null,"status":"in_progress"}}',
    '{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":'
    '"bash -lc ls","aggregated_output":"src\\n","exit_code":0,"status":"completed"}}',
    "Reading prompt from stdin...",
    '{"type":"item.completed","item":{"id":"item_2","type":"file_change","changes":'
    '[{"path":"/w/src/a.py","kind":"update"},{"path":"/w/README.md","kind":"add"}],'
    '"status":"completed"}}',
    '{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"Done."}}',
    '{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,'
    '"output_tokens":122}}',
]


def test_codex_jsonl_gives_steps_thread_and_tokens() -> None:
    steps, report = feed("codex", CODEX_SAMPLE)
    assert steps == ["Bash: bash -lc ls", "Edit src/a.py, README.md"]
    assert report.ok is True and report.session_id == "0199a213-81c0-7800-8aa1-bbab2a035a53"
    assert (report.tokens_in, report.tokens_out, report.turns) == (24763, 122, 1)
    assert report.cost_usd is None


def test_codex_failures_and_usage_limits() -> None:
    failed = ['{"type":"thread.started","thread_id":"t"}', '{"type":"turn.failed","error":'
              '{"message":"stream disconnected before completion"}}']  # fmt: skip
    _, report = feed("codex", failed)
    assert report.ok is False and report.error == "stream disconnected before completion"
    text = (
        "You've hit your usage limit. Upgrade to Pro (https://openai.com/chatgpt/pricing) "
        "or try again in 2 days 3 hours 4 minutes."
    )
    before = time.time()
    _, limited = feed("codex", [json.dumps({"type": "error", "message": text})])
    assert limited.ok is False and limited.rate_limited
    assert limited.reset_at is not None
    assert limited.reset_at - before == pytest.approx(2 * 86400 + 3 * 3600 + 4 * 60, abs=5)
    # a transient error the agent recovered from is not a failure
    recovered = [json.dumps({"type": "error", "message": "429 Too Many Requests; retrying"})]
    _, ok = feed("codex", [*recovered, '{"type":"turn.completed","usage":{}}'])
    assert ok.ok is True and not ok.rate_limited and ok.error is None


def test_gemini_stream_json() -> None:
    lines = [
        '{"type":"init","timestamp":"t","session_id":"g-1","model":"gemini-2.5-pro"}',
        '{"type":"tool_use","tool_name":"write_file","tool_id":"1",'
        '"parameters":{"file_path":"/w/a.txt","content":"x"}}',
        '{"type":"result","status":"success","stats":{"total_tokens":90,"input_tokens":70,'
        '"output_tokens":20,"duration_ms":5,"tool_calls":1}}',
    ]
    steps, report = feed("gemini", lines)
    assert steps == ["write_file a.txt"]
    assert (report.ok, report.session_id, report.tokens_in, report.tokens_out) == (
        True,
        "g-1",
        70,
        20,
    )


def test_plain_output_has_no_structured_result_and_custom_commands_are_sniffed() -> None:
    for kind in ("shell", "aider"):
        steps, report = feed(kind, ["{not json", '{"type":"result"}', "plain text"])
        assert steps == [] and report.ok is None and report.session_id is None
    steps, report = feed("command", ["booting wrapper...", *CLAUDE_SAMPLE])
    assert steps[-1] == "Bash: pytest -q" and report.ok is True and report.cost_usd == 0.1234


# -------------------------------------------------------------------------------- secrets


def secrets_workflow(tmp_path: Path) -> Workflow:
    mine = AgentProfile(name="mine", command=("a",), env={"MY_TOKEN": "${MY_TOKEN}"})
    t1 = Task(id="T1", agent="mine", env={"X": "pre-${DB_URL}-${MY_TOKEN}", "Y": "$${NOT_A_REF}"})
    return workflow(tmp_path, t1, agents_={"mine": mine})


def test_refs_are_collected_with_where_they_are_used(tmp_path: Path) -> None:
    refs = collect_refs(secrets_workflow(tmp_path))
    assert refs == {
        "MY_TOKEN": ["agents.mine.env.MY_TOKEN", "tasks.T1.env.X"],
        "DB_URL": ["tasks.T1.env.X"],
    }


def test_missing_variables_are_all_reported_before_anything_starts(tmp_path: Path) -> None:
    wf = secrets_workflow(tmp_path)
    with pytest.raises(UserError) as err:
        resolve(wf, {"HOME": "/h"})
    message = err.value.render()
    assert "MY_TOKEN (referenced by agents.mine.env.MY_TOKEN, tasks.T1.env.X)" in message
    assert "DB_URL (referenced by tasks.T1.env.X)" in message and "NOT_A_REF" not in message
    secrets = resolve(wf, {"MY_TOKEN": "tok-123456", "DB_URL": "postgres://u:pw@h/db"})
    assert secrets.expand("pre-${DB_URL}-${MY_TOKEN}") == "pre-postgres://u:pw@h/db-tok-123456"


def test_redaction_masks_every_secret_whole_and_leaves_short_values(tmp_path: Path) -> None:
    s = Secrets({"A": "abcdef", "B": "abcdefgh", "SHORT": "on", "C": "a.b*c"})
    assert s.redact("x abcdefgh y abcdef z a.b*c on") == "x *** y *** z *** on"
    assert Secrets().redact("nothing") == "nothing"
    many = Secrets({f"K{i}": f"secret-value-{i:03d}" for i in range(200)})
    line = "log line with secret-value-150 and secret-value-007 in it " * 4
    start = time.process_time()  # CPU, not wall: 4 test workers share 2 cores
    for _ in range(10_000):
        many.redact(line)
    assert time.process_time() - start < 2.0
    assert "secret-value" not in many.redact(line)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.text(alphabet="abcxyz01-", min_size=4, max_size=12), max_size=5),
    pieces=st.lists(st.text(alphabet="abcxyz01- \n", max_size=8), max_size=6),
)
def test_no_secret_survives_redaction(values: list[str], pieces: list[str]) -> None:
    secrets = Secrets({f"V{i}": v for i, v in enumerate(values)})
    text = "".join(p + (values[i % len(values)] if values else "") for i, p in enumerate(pieces))
    redacted = secrets.redact(text)
    for value in values:
        assert value not in redacted
