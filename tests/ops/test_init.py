"""`conductor init`: a starter workflow that validates and runs, the agent CLIs on PATH as
its profiles, `.conductor/` excluded; `--from PLAN.md` on a realistic plan; and every bad
input refused with where, writing nothing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.testing.repos import git, make_repo
from tests.testing.runner import cli

PLANS = Path(__file__).parent / "plans"


def bin_with(tmp: Path, *names: str) -> str:
    """A PATH holding fake agent CLIs ``names`` and the system's tools (no real agents)."""
    d = tmp / "bin"
    d.mkdir(exist_ok=True)
    for name in names:
        exe = d / name
        exe.write_text("#!/bin/sh\necho fake\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    keep = [p for p in os.environ["PATH"].split(os.pathsep)
            if not any((Path(p) / a).exists() for a in ("claude", "codex", "gemini", "aider"))]
    return os.pathsep.join([str(d), *keep])  # fmt: skip


def init(repo: Path, *args: str, path: str) -> tuple[int, str, str]:
    proc = cli(repo, "init", *args, env={"PATH": path})
    return proc.returncode, proc.stdout, proc.stderr


def test_starter_without_agent_clis_runs_as_written(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "my-repo")
    code, out, err = init(repo, path=bin_with(tmp_path))
    assert code == 0, err
    wf = repo / "workflows" / "my-repo.yaml"
    text = wf.read_text()
    assert text.startswith("# yaml-language-server: $schema=../.conductor/workflow.schema.json")
    assert json.loads((repo / ".conductor" / "workflow.schema.json").read_text())["title"]
    assert ".conductor/" in (repo / ".git" / "info" / "exclude").read_text()
    assert "defaults: {agent: sh," in text and "none (shell tasks only)" in out
    assert cli(repo, "validate", str(wf)).returncode == 0
    assert cli(repo, "run", "workflows/my-repo.yaml").returncode == 0  # it runs as written
    assert git(repo, "show", "conductor/my-repo:FILES.txt").strip() == "2"  # README, NOTES
    assert git(repo, "status", "--porcelain", "--ignored", ".conductor") == "!! .conductor/"


def test_starter_picks_the_agent_cli_found_on_path(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    code, out, err = init(repo, "flow.yaml", path=bin_with(tmp_path, "codex", "aider"))
    assert code == 0, err
    text = (repo / "flow.yaml").read_text()
    assert "$schema=.conductor/workflow.schema.json" in text
    assert "defaults: {agent: codex," in text
    assert "  codex: {preset: codex}" in text and "  aider: {preset: aider}" in text
    assert "claude" not in text.split("agents:")[1].split("groups:")[0]
    assert "codex, aider" in out
    assert cli(repo, "validate", "flow.yaml").returncode == 0


def test_a_plan_becomes_a_workflow_that_plans_as_it_says(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    (repo / "PLAN.md").write_text((PLANS / "phase.md").read_text())
    code, out, err = init(repo, "--from", "PLAN.md", path=bin_with(tmp_path, "claude"))
    assert code == 0, err
    assert "6 tasks" in out and "left out, checked as done in the plan: Spike" in out
    wf = "workflows/phase-5-3.yaml"
    plan = json.loads(cli(repo, "plan", wf, "--json").stdout)
    assert plan["waves"] == [["Schema", "Config"], ["Retry", "Scheduler"], ["Review", "Docs"]]
    tasks = {t["id"]: t for t in plan["tasks"]}
    assert tasks["Schema"]["group"] == "GROUP_A" and tasks["Docs"]["group"] == "docs"
    assert tasks["Review"]["group"] == "GROUP_B"  # a ### heading stays in its group
    assert tasks["Retry"]["deps"] == ["Schema", "Config"]
    assert tasks["Schema"]["estimate_hours"] == 4 and tasks["Scheduler"]["estimate_hours"] == 2.5
    assert tasks["Config"]["estimate_hours"] == 0.75 and tasks["Docs"]["estimate_hours"] is None
    assert tasks["Retry"]["title"] == "the retry engine with backoff and jitter"
    text = (repo / wf).read_text()
    assert "      - every foreign key indexed\n" in text and "CREATE TABLE jobs" in text
    assert "Backoff doubles up to 5 minutes" in text


BAD_PLANS = {
    "no id": ("## G\n\n- [ ] create the schema\n", 3, "checklist item without a task id"),
    "unknown after": ("- [ ] Schema: s\n- [ ] Auth: a (after: Shema)\n", 2,
                      "`after: Shema` names no item of the plan"),
    "twice": ("- [ ] A: one\n- [ ] B: two\n- [ ] A: again\n", 3, "`A` is listed twice"),
    "loop": ("- [ ] A: one (after: B)\n- [ ] B: two (after: A)\n", 1,
             "come after each other: A -> B -> A"),
    "empty": ("# Nothing\n\n- [x] Done: all of it\n", 1, "no open checklist item"),
}


@pytest.mark.parametrize("case", sorted(BAD_PLANS))
def test_a_plan_it_cannot_read_is_refused_with_its_line(tmp_path: Path, case: str) -> None:
    text, line, message = BAD_PLANS[case]
    repo = make_repo(tmp_path / "r")
    (repo / "PLAN.md").write_text(text)
    code, out, err = init(repo, "--from", "PLAN.md", path=bin_with(tmp_path))
    assert code == 2, out
    assert f"PLAN.md:{line}:" in err and message in err and "Traceback" not in err
    assert not (repo / "workflows").exists() and not (repo / ".conductor").exists()
    if case == "unknown after":
        assert "did you mean `Schema`?" in err


def test_refusals_write_nothing(tmp_path: Path) -> None:
    path = bin_with(tmp_path)
    outside = tmp_path / "plain"
    outside.mkdir()
    code, _, err = init(outside, path=path)
    assert code == 2 and "not inside a git repository" in err
    assert list(outside.iterdir()) == []
    repo = make_repo(tmp_path / "r")
    (repo / "wf.yaml").write_text("mine\n")
    code, _, err = init(repo, "wf.yaml", path=path)
    assert code == 2 and "wf.yaml already exists" in err and "--force" in err
    assert (repo / "wf.yaml").read_text() == "mine\n" and not (repo / ".conductor").exists()
    code, _, err = init(repo, "--from", "MISSING.md", path=path)
    assert code == 2 and "no such file: MISSING.md" in err
    code, _, err = init(repo, "wf.yaml", "--force", path=path)
    assert code == 0, err
    assert (repo / "wf.yaml").read_text().startswith("# yaml-language-server")
