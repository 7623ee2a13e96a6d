"""The real Codex CLI inside conductor's sandbox, its own sandbox on (issue 15), offline.

Codex 0.169 confines the commands it runs with bubblewrap of its own (`-s workspace-write`,
the codex preset's default). That nested sandbox works inside ours: as a normal user
natively, and as root because ours then runs the command as an ordinary uid in a user
namespace (exec/sandbox.py `_root_caps`). The scripted model's one command writes its work
and tries to write outside, read `~/.ssh/id_rsa` and commit: the work is merged (conductor
commits it), the rest refused, the user's repository and home unchanged.

Codex's home lies outside /tmp here: codex 0.169 refuses to install its sandbox helpers
under a temporary directory, and then runs no command at all.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor.exec.sandbox import unavailable
from tests.run.test_sandbox import tree_hash, user_repo
from tests.testing.modelserver import ModelServer
from tests.testing.realcli import AgentSandbox, find_cli, missing_reason
from tests.testing.repos import git, write
from tests.testing.runner import db_rows, run_json, write_workflow

pytestmark = [
    pytest.mark.skipif(find_cli("codex") is None, reason=missing_reason("codex")),
    pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
]

COMMAND = ("echo hi > inside.txt; echo x > ../../outside.txt; cat ~/.ssh/id_rsa; "
           "git add -A && git commit -qm x && echo COMMIT-$((1+1)); echo end")  # fmt: skip


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="conductor-codex-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_codex_and_its_own_sandbox_run_inside_ours(repo: Path, outside_tmp: Path) -> None:
    with ModelServer() as server:
        env = AgentSandbox.create(outside_tmp, server.url).env()
        home = Path(env["HOME"])
        write(home / ".ssh" / "id_rsa", "FAKE PRIVATE KEY\n")
        server.add({"tool": "exec_command", "input": {"cmd": COMMAND}}, {"text": "Done."})
        port = server.url.rsplit(":", 1)[1]
        write_workflow(repo, f"""
            version: 1
            name: t
            defaults: {{retries: 0, timeout: 120s, idle_timeout: 60s}}
            agents:
              codex: {{preset: codex, model: gpt-5.5, sandbox: {{network: ["127.0.0.1:{port}"]}}}}
            tasks:
              T1: {{agent: codex, prompt: Do the work.}}
            """)
        before_repo, before_home = user_repo(repo), tree_hash(home, skip=(".codex",))
        code, events, err = run_json(repo, "wf.yaml", env=env)
    assert code == 0, err + str([e["data"] for e in events if e["kind"] == "task_failed"])
    assert git(repo, "show", "conductor/t:inside.txt") == "hi"
    (att,) = db_rows(repo, "SELECT * FROM attempts WHERE task_id = 'T1'")
    log = Path(att["log_path"]).read_text()
    assert "-s workspace-write" in log  # codex's own sandbox was on
    assert "outside.txt: Read-only file system" in log
    assert "id_rsa: Permission denied" in log and "FAKE PRIVATE KEY" not in log
    assert "fatal: Unable to create" in log and "COMMIT-2" not in log  # git: read-only
    assert user_repo(repo) == before_repo
    assert tree_hash(home, skip=(".codex",)) == before_home
