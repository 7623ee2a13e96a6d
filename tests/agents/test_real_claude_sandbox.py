"""The real Claude Code CLI inside conductor's sandbox (issue 15), offline.

The scripted model (tests/testing/modelserver.py on 127.0.0.1) has Claude write its work
into the worktree, then run one Bash tool call that tries everything the sandbox forbids:
write `../../outside.txt` and the main checkout, read `~/.ssh/id_rsa`, edit `.git/config`,
move another branch with `git update-ref`, start a daemon, reach a second local server
that is not allowed. Every one is refused, in Claude's own tool output; the model endpoint
stays reachable through the sandbox (its default network is exactly that endpoint, read
from ANTHROPIC_BASE_URL); the work is committed and merged by conductor; nothing survives;
the user's repository and home (but Claude's own state directory) are byte-identical.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor.exec.sandbox import unavailable
from tests.run.test_sandbox import tree_hash, user_repo
from tests.testing.hello import GET, hello_servers
from tests.testing.modelserver import ModelServer
from tests.testing.procs import kill_with, pids_with
from tests.testing.realcli import AgentSandbox, find_cli, missing_reason
from tests.testing.repos import git, write
from tests.testing.runner import db_rows, run_json, write_workflow

pytestmark = [
    pytest.mark.skipif(find_cli("claude") is None, reason=missing_reason("claude")),
    pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
]

OWN_STATE = (".claude", ".claude.json")  # the agent's state directory: writable by design


@pytest.fixture
def token() -> Iterator[str]:
    value = f"cnd-sbx-{uuid.uuid4().hex[:8]}"
    yield value
    kill_with(value)


def attacks(repo: Path, token: str, other: int) -> str:
    return "\n".join([
        "echo x > ../../outside.txt",
        f"echo x > {repo}/README.md",
        "cat ~/.ssh/id_rsa",
        "git config user.name evil",
        "git update-ref refs/heads/other HEAD",
        f"setsid bash -c 'exec -a {token} sleep 1000' &",
        f"{GET} http://127.0.0.1:{other}/ || echo OTHER-REFUSED",
        "echo tried",
    ])  # fmt: skip


def test_claude_in_the_sandbox_is_refused_everything_but_its_work(
    repo: Path, tmp_path: Path, token: str
) -> None:
    with ModelServer() as server, hello_servers(1) as (other,):
        env = AgentSandbox.create(tmp_path, server.url).env()
        home = Path(env["HOME"])
        write(home / ".ssh" / "id_rsa", "FAKE PRIVATE KEY\n")
        write(home / ".gitconfig", "[user]\n\tname = Test User\n")
        server.add(
            {"tool": "Write", "input": {"file_path": "{cwd}/work.txt", "content": "work\n"}},
            {"tool": "Bash", "input": {"command": attacks(repo, token, other)}},
            {"text": "Done."},
        )
        write_workflow(repo, """
            version: 1
            name: t
            defaults: {retries: 0, timeout: 120s, idle_timeout: 60s}
            agents:
              claude: {preset: claude-code, sandbox: true}
            tasks:
              T1: {agent: claude, prompt: Do the work.}
            """)
        before_repo = user_repo(repo)
        before_home = tree_hash(home, skip=OWN_STATE)
        code, events, err = run_json(repo, "wf.yaml", env=env)
        turns = len(server.turns())
    assert code == 0, err + str([e["data"] for e in events if e["kind"] == "task_failed"])
    assert turns >= 3  # the model endpoint was reached through the sandbox every turn
    assert git(repo, "show", "conductor/t:work.txt") == "work"  # conductor committed it
    (att,) = db_rows(repo, "SELECT * FROM attempts WHERE task_id = 'T1'")
    out = _tool_output(Path(att["log_path"]))
    assert out.count("Read-only file system") >= 4, out
    assert "Permission denied" in out and "FAKE PRIVATE KEY" not in out
    assert "OTHER-REFUSED" in out and "hello from" not in out
    assert user_repo(repo) == before_repo
    assert tree_hash(home, skip=OWN_STATE) == before_home
    assert not (repo / ".conductor" / "worktrees" / "outside.txt").exists()
    assert [p for p in pids_with(token)] == []
    (boxed,) = [e["data"] for e in events if e["kind"] == "task_sandbox"]
    assert boxed["policy"].startswith(f"network only 127.0.0.1:{server.url.rsplit(':', 1)[1]}")
    assert boxed["refused"] >= 1  # the second server's closed port, inside the namespace
    prompt = next(repo.glob(".conductor/runs/*/prompts/T1-1.md")).read_text()
    assert "conductor commits your changes" in prompt and "## Your sandbox" in prompt


def _tool_output(log: Path) -> str:
    """What Claude's tools returned, from its stream-json log."""
    out = []
    for line in log.read_text().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        for item in (doc.get("message") or {}).get("content") or []:
            if isinstance(item, dict) and item.get("type") == "tool_result":
                content = item.get("content")
                out.append(content if isinstance(content, str) else json.dumps(content))
    return "\n".join(out)
