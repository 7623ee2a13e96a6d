"""The fake agent CLIs, run end to end through conductor.agents.profiles in a real temp git repo.

Each test builds the argv/env exactly as conductor would, runs the fake as a real process
and parses its stdout with the preset's parser: so the presets' flags are accepted by a
parser as strict as the real CLI's, and the parsers read the real output formats.
"""

from __future__ import annotations

import dataclasses
import resource
import subprocess
import time
from pathlib import Path

import pytest

from conductor.spec.model import AgentProfile, Task
from tests.testing.harness import FAKES, fake_env, launch, run, workflow
from tests.testing.repos import git


def script(*lines: str, before: str = "Do the task.") -> str:
    return before + "\n\n```fake-agent\n" + "\n".join(lines) + "\n```\n"


def test_fake_claude_writes_runs_and_commits_and_reports_like_claude(repo: Path) -> None:
    task = Task(
        id="T1",
        prompt=script(
            "write src/a.txt hello\\nworld",
            "append src/a.txt more  # verbatim, comment included",
            "run echo ran > ran.txt",
            "commit add a",
            "sleep 0.05  # a comment",
        ),
    )
    code, report, steps, err = run(launch(workflow(repo.parent, task), task, repo))
    assert code == 0, err
    assert (repo / "src/a.txt").read_text() == "hello\nworld\nmore  # verbatim, comment included\n"
    assert (repo / "ran.txt").read_text() == "ran\n"
    assert git(repo, "log", "-1", "--format=%s") == "add a"
    assert steps[:3] == ["Write src/a.txt", "Edit src/a.txt", "Bash: echo ran > ran.txt"]
    assert steps[-1] == "Bash: sleep 0.05"
    assert report.ok is True and report.session_id and report.turns == 6
    assert report.cost_usd == pytest.approx(0.006) and report.tokens_out == 120


def test_fake_claude_resumes_the_given_session_and_refuses_nested_sessions(repo: Path) -> None:
    task = Task(id="T1", prompt=script("say hi"))
    wf = workflow(repo.parent, task)
    _, report, _, _ = run(launch(wf, task, repo, resume="sess-1234"))
    assert report.session_id == "sess-1234"
    # conductor strips CLAUDECODE, so a run from inside Claude Code still works ...
    code, report, _, _ = run(launch(wf, task, repo, base_env=fake_env(CLAUDECODE="1")))
    assert code == 0 and report.ok
    # ... which matters, because (like the real CLI) the fake refuses to nest
    lnch = launch(wf, task, repo)
    proc = subprocess.run(lnch.argv, env={**lnch.env, "CLAUDECODE": "1"}, capture_output=True)
    assert proc.returncode == 1 and b"another Claude Code session" in proc.stderr


def test_fake_codex_accepts_the_preset_argv_including_resume(repo: Path) -> None:
    task = Task(id="T1", agent="codex", prompt=script("write b.txt bee", "run true"))
    wf = workflow(repo.parent, task)
    wf.agents["codex"] = AgentProfile(name="codex", preset="codex", model="o3", args=("-c", "a=1"))
    code, report, steps, err = run(launch(wf, task, repo, resume="th-9"))
    assert code == 0, err
    assert (repo / "b.txt").read_text() == "bee\n"
    assert steps == ["Edit b.txt", "Bash: true"]
    assert report.ok is True and report.session_id == "th-9" and report.tokens_in == 800
    # the fake is as strict as clap: a non-global option after `resume` is an error
    lnch = launch(wf, task, repo)
    bad = ["codex", "exec", "--json", "resume", "th-9", "-s", "workspace-write", "go"]
    proc = subprocess.run(bad, cwd=repo, env=lnch.env, capture_output=True, text=True)
    assert proc.returncode == 2 and "-s" in proc.stderr


def test_fake_gemini_and_aider(repo: Path) -> None:
    task = Task(id="T1", agent="gemini", prompt=script("write g.txt gee"))
    code, report, steps, _ = run(launch(workflow(repo.parent, task), task, repo))
    assert code == 0 and report.ok and steps == ["write_file g.txt"] and report.session_id
    aider = dataclasses.replace(task, agent="aider", prompt=script("write h.txt aitch"))
    code, report, _, err = run(launch(workflow(repo.parent, aider), aider, repo))
    assert code == 0, err
    assert report.ok is None and (repo / "h.txt").exists()
    # its printed model, tokens and cost are read (the fake prints aider's lines)
    assert (report.model, report.tokens_in, report.tokens_out) == ("gpt-4o", 1200, 345)
    assert report.cost_usd == pytest.approx(0.0012) and report.turns == 1
    # the aider flags keep its commits, .gitignore edits and history out of the worktree
    assert git(repo, "log", "--format=%s") == "initial"
    assert not (repo / ".gitignore").exists() and not list(repo.glob(".aider*"))


def test_unknown_flags_exit_2_like_a_real_cli(repo: Path) -> None:
    env = fake_env()
    for argv in (
        ["claude", "-p", "x", "--output-format", "stream-json", "--verbose", "--bogus"],
        ["codex", "exec", "--json", "--sandbox", "yolo", "x"],
        ["gemini", "-p", "x", "--frobnicate"],
        ["aider", "--message", "x", "--no-such-flag"],
    ):
        proc = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True)
        assert proc.returncode == 2, argv
        assert proc.stdout == ""
    # stream-json without --verbose is refused by claude -p, and so by the fake
    argv = ["claude", "-p", "x", "--output-format", "stream-json"]
    assert subprocess.run(argv, cwd=repo, env=env, capture_output=True).returncode == 1


def test_fail_reports_the_error_and_fail_once_fails_only_the_first_attempt(repo: Path) -> None:
    task = Task(id="T1", prompt=script("fail the tests are red"))
    wf = workflow(repo.parent, task)
    code, report, _, _ = run(launch(wf, task, repo))
    assert code == 1 and report.ok is False and report.error == "the tests are red"
    flaky = dataclasses.replace(task, prompt=script("fail-once m1 flaky network", "write f.txt"))
    code, report, _, _ = run(launch(wf, flaky, repo, attempt=1))
    assert code == 1 and report.error == "flaky network" and not (repo / "f.txt").exists()
    code, report, _, _ = run(launch(wf, flaky, repo, attempt=2))
    assert code == 0 and report.ok and (repo / "f.txt").exists()
    codex = dataclasses.replace(task, agent="codex")
    code, report, _, _ = run(launch(wf, codex, repo))
    assert code == 1 and report.ok is False and report.error == "the tests are red"


def test_usage_limits_are_recognised_with_their_reset_time(repo: Path) -> None:
    for agent in ("claude", "codex"):
        task = Task(id="T1", agent=agent, prompt=script("limit 120"))
        before = time.time()
        code, report, _, _ = run(launch(workflow(repo.parent, task), task, repo))
        assert code == 1 and report.ok is False and report.rate_limited, agent
        assert report.reset_at is not None
        assert report.reset_at - before == pytest.approx(120, abs=5), agent


@pytest.mark.slow
def test_hang_and_silence_are_what_timeouts_are_for(repo: Path) -> None:
    task = Task(id="T1", prompt=script("say starting", "hang"))
    lnch = launch(workflow(repo.parent, task), task, repo)
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as hung:
        subprocess.run(lnch.argv, cwd=repo, env=lnch.env, capture_output=True, timeout=0.6)
    assert time.monotonic() - start < 5
    assert b'"subtype": "init"' in (hung.value.stdout or b"")  # it started, then went quiet
    quiet = dataclasses.replace(task, prompt=script("silent 0.3"))
    start = time.monotonic()
    code, report, steps, _ = run(launch(workflow(repo.parent, quiet), quiet, repo))
    assert code == 0 and report.ok and steps == [] and time.monotonic() - start >= 0.3


def test_long_prompts_reach_the_agent_through_the_instructions_file(repo: Path) -> None:
    padding = "context line\n" * 9000  # > 100 kB, so argv only carries a file reference
    task = Task(id="T1", prompt=padding + script("write long.txt read it"))
    lnch = launch(workflow(repo.parent, task), task, repo)
    assert len(lnch.argv[2]) < 500
    code, report, _, _ = run(lnch)
    assert code == 0 and report.ok and (repo / "long.txt").read_text() == "read it\n"


def test_the_prompt_never_reaches_a_shell(repo: Path) -> None:
    evil = "$(touch pwned1); `touch pwned2` && touch pwned3 ' \" \\"
    task = Task(id="T1", prompt=evil + script("say ok"))
    code, report, _, _ = run(launch(workflow(repo.parent, task), task, repo))
    assert code == 0 and report.ok
    assert not list(repo.glob("pwned*"))


def test_a_custom_command_wrapping_a_cli_gets_that_clis_report(repo: Path) -> None:
    wrapper = AgentProfile(
        name="wrapped",
        command=("claude", "-p", "{prompt}", "--output-format", "stream-json", "--verbose"),
    )
    task = Task(id="T1", agent="wrapped", prompt=script("write w.txt wrapped"))
    wf = workflow(repo.parent, task, agents_={"wrapped": wrapper})
    code, report, steps, _ = run(launch(wf, task, repo))
    assert code == 0 and report.ok is True and report.cost_usd and steps == ["Write w.txt"]


def test_fakes_are_executable_and_start_fast(repo: Path) -> None:
    env = fake_env()
    for name in ("claude", "codex", "gemini", "aider"):
        assert (FAKES / name).stat().st_mode & 0o111
    argv = ["claude", "-p", "hi", "--output-format", "stream-json", "--verbose"]
    subprocess.run(argv, cwd=repo, env=env, capture_output=True, check=True)  # warm caches
    start, cpu = time.perf_counter(), _children_cpu()
    for _ in range(5):
        subprocess.run(argv, cwd=repo, env=env, capture_output=True, check=True)
    # what a start costs is CPU time; the wall clock also counts waiting for a core, which
    # tests running side by side (pytest -n) on 2 cores make long
    assert (_children_cpu() - cpu) / 5 < 0.3
    assert (time.perf_counter() - start) / 5 < 1.0  # and nothing waits


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
