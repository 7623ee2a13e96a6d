"""`sandbox:` end to end with shell tasks (issue 15): each rule refused in the agent's own
log, the in-worktree work still committed and merged, the user's repository and home
byte-identical afterwards, refusals in the execution log, preflight that never runs a
task unconfined, and `--validate-only` saying what each profile's sandbox allows."""

from __future__ import annotations

import hashlib
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conductor.exec.sandbox import unavailable
from tests.testing.hello import GET, hello_servers
from tests.testing.procs import kill_with, pids_with
from tests.testing.repos import git, write
from tests.testing.runner import cli, db_rows, run_json, write_workflow

needs_bwrap = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))

HOSTILE = """\
echo work > work.txt
echo x > ../../outside.txt
echo x > {repo}/README.md
touch {repo}/.conductor/evil
cat ~/.ssh/id_rsa
cat {repo}/.env
git config user.name evil
echo '#!/bin/sh' > {repo}/.git/hooks/pre-commit
git update-ref refs/heads/other HEAD
setsid bash -c 'exec -a {token} sleep 1000' &
echo key=value >> "$CONDUCTOR_OUTPUT"
true
"""


def tree_hash(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file, directory and symlink under ``root`` (but ``skip``) with its content's
    hash and mode: what must come out byte-identical."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] in skip:
            continue
        st = path.lstat()
        if stat.S_ISREG(st.st_mode):
            out[rel] = f"{st.st_mode:o} " + hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = f"{st.st_mode:o} " + (os.readlink(path) if path.is_symlink() else "")
    return out


def user_repo(repo: Path) -> dict[str, object]:
    """The user's files, index, HEAD, config, hooks and own refs: conductor's own refs,
    objects and state directory are the only things a run may add."""
    git_dir = repo / ".git"
    refs = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return {
        "files": tree_hash(repo, skip=(".git", ".conductor")),
        "git": {
            k: v
            for k, v in tree_hash(git_dir).items()
            if k in ("HEAD", "config", "index") or k.startswith("hooks/")
        },
        "refs": [
            r
            for r in refs.splitlines()
            if not r.startswith(("refs/heads/conductor/", "refs/conductor"))
        ],
    }


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "fake-home"
    write(home / ".ssh" / "id_rsa", "FAKE PRIVATE KEY\n")
    write(home / ".gitconfig", "[user]\n\tname = Test User\n\temail = test@example.com\n")
    write(home / ".aws" / "credentials", "[default]\naws_secret_access_key = FAKE\n")
    return home


@pytest.fixture
def token() -> Iterator[str]:
    value = f"cnd-sbx-{uuid.uuid4().hex[:8]}"
    yield value
    kill_with(value)


@needs_bwrap
def test_a_sandboxed_task_reaches_nothing_but_its_worktree(
    repo: Path, home: Path, token: str
) -> None:
    write(repo / ".env", "SECRET_TOKEN=hunter2hunter2\n")  # untracked, as .env files are
    write(repo / ".git" / "hooks" / "post-commit", "#!/bin/sh\ntrue\n")
    script = HOSTILE.format(repo=repo, token=token)
    body = "".join(f"      {line}\n" for line in script.splitlines())
    head = "version: 1\nname: t\ndefaults: {retries: 0, sandbox: true}\ntasks:\n  T1:\n"
    write_workflow(repo, head + "    output_keys: [key]\n    run: |\n" + body)
    before_repo, before_home = user_repo(repo), tree_hash(home)
    code, events, err = run_json(repo, "wf.yaml", env={"HOME": str(home)})
    assert code == 0, err + str([e["data"] for e in events if e["kind"] == "task_failed"])
    # the work inside the worktree is committed and merged, its output read
    assert git(repo, "show", "conductor/t:work.txt") == "work"
    (att,) = db_rows(repo, "SELECT * FROM attempts WHERE task_id = 'T1'")
    assert '"key": "value"' in att["outputs"]
    # everything else was refused, in the agent's own words
    text = Path(att["log_path"]).read_text()
    assert text.count("Read-only file system") >= 6, text
    assert text.count("Permission denied") == 2, text
    assert "FAKE PRIVATE KEY" not in text and "hunter2" not in text
    assert not (repo / ".conductor" / "worktrees" / "outside.txt").exists()
    assert not (repo / ".conductor" / "evil").exists()
    # the user's repository and home are byte-identical; nothing it started lives on
    assert user_repo(repo) == before_repo
    assert tree_hash(home) == before_home
    assert pids_with(token) == []
    boxed = [e["data"] for e in events if e["kind"] == "task_sandbox"]
    assert boxed and boxed[0]["policy"].startswith("network none") and boxed[0]["refused"] == 0


@needs_bwrap
def test_the_network_allow_list_lets_one_server_through_and_counts_the_rest(
    repo: Path, home: Path
) -> None:
    with hello_servers(2) as (allowed, other):
        _run_allow_list(repo, home, allowed, other)


def _run_allow_list(repo: Path, home: Path, allowed: int, other: int) -> None:
    write_workflow(repo, f"""
        version: 1
        name: t
        defaults: {{retries: 0}}
        tasks:
          T1:
            sandbox: {{network: ["127.0.0.1:{allowed}"]}}
            run: |
              {GET} http://127.0.0.1:{allowed}/ > reached.txt
              {GET} http://127.0.0.1:{other}/ || echo other refused
              {GET} http://evil.example/ || echo proxy refused
        """)
    code, events, err = run_json(repo, "wf.yaml", env={"HOME": str(home)})
    assert code == 0, err
    assert git(repo, "show", "conductor/t:reached.txt") == f"hello from {allowed}"
    (boxed,) = [e["data"] for e in events if e["kind"] == "task_sandbox"]
    assert boxed["policy"].startswith(f"network only 127.0.0.1:{allowed}")
    assert boxed["refusals"]["evil.example:80 (not in the network allow-list)"] == 1
    assert boxed["refused"] >= 2  # and the closed port inside the namespace
    warnings = [e["data"]["warning"] for e in events if e["kind"] == "task_warning"]
    assert any("the sandbox refused" in w and "evil.example:80" in w for w in warnings)
    log = next(repo.glob(".conductor/runs/*/EXECUTION_LOG.md")).read_text()
    section = log[log.index("## Sandbox") :]
    assert f"| `T1` | 1 | network only 127.0.0.1:{allowed}" in section
    assert "evil.example:80 (not in the network allow-list) ×1" in section


FAILING_BWRAP = "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n"


def test_a_sandbox_that_cannot_be_made_fails_preflight(repo: Path, tmp_path: Path) -> None:
    fake = write(tmp_path / "bin" / "bwrap", FAILING_BWRAP)
    fake.chmod(0o755)
    write_workflow(repo, """
        version: 1
        name: t
        tasks:
          T1: {run: "echo unconfined > ran.txt", sandbox: true}
          T2: {run: "true"}
        """)
    env = {"PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    for args in (["--validate-only"], []):
        done = cli(repo, "run", "wf.yaml", *args, env=env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "wf.yaml:4:3: 1 task(s) ask for a sandbox (T1), but bubblewrap cannot create " \
               "a sandbox here: bwrap: setting up uid map: Permission denied" in done.stderr
        assert "never runs them unconfined" in done.stderr
        assert "apt-get install bubblewrap" in done.stderr
    assert not (repo / ".conductor" / "worktrees").exists() or not any(
        (repo / ".conductor" / "worktrees").rglob("ran.txt"))  # fmt: skip


def test_tmux_agents_cannot_be_sandboxed(repo: Path) -> None:
    write_workflow(repo, """
        version: 1
        name: t
        agents:
          pane: {command: [bash, -c, "true"], executor: tmux, sandbox: true}
        tasks:
          T1: {agent: pane, prompt: hi}
        """)
    done = cli(repo, "run", "wf.yaml", "--validate-only")
    assert done.returncode == 2
    assert "task T1: `sandbox:` needs the local executor; agent pane runs in tmux" in done.stderr


@needs_bwrap
def test_validate_only_says_what_each_profile_may_do(repo: Path, home: Path) -> None:
    write(repo / ".env.local", "X=1\n")
    write_workflow(repo, """
        version: 1
        name: t
        defaults: {sandbox: true}
        agents:
          local-claude:
            preset: shell
            sandbox: {network: ["127.0.0.1:8080", api.example.com:443], read_write: [~/.cache/tool]}
        tasks:
          T1: {run: "true"}
          T2: {run: "true", agent: local-claude}
          T3: {run: "true", sandbox: false}
        """)
    done = cli(repo, "run", "wf.yaml", "--validate-only", env={"HOME": str(home)})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert (f"sandbox of shell (T1): network none (own loopback only); writable <worktree>, "
            f"/tmp; unreadable {home}/.ssh, {home}/.aws, {repo}/.env.local") in out  # fmt: skip
    assert (f"sandbox of local-claude (T2): network only 127.0.0.1:8080, api.example.com:443; "
            f"writable <worktree>, /tmp, {home}/.cache/tool;") in out  # fmt: skip
    assert "(T3)" not in out
    assert not (home / ".cache").exists()  # describing changed nothing


def test_a_sandboxed_agent_is_told_that_conductor_commits_for_it(repo: Path) -> None:
    from conductor.agents.briefing import COMMITS_YOURSELF, COMMITTED_FOR_YOU
    from conductor.agents.profiles import InstructionContext, instructions
    from conductor.spec.load import load_workflow

    path = write_workflow(repo, """
        version: 1
        name: t
        tasks:
          T1: {prompt: do it, sandbox: {network: none}}
          T2: {prompt: do it}
        """)
    wf = load_workflow(path)
    ctx = InstructionContext(run_id="r1", attempt=1, worktree=repo, upstream=[])
    boxed, free = (instructions(wf, wf.tasks[t], ctx) for t in ("T1", "T2"))
    assert COMMITTED_FOR_YOU in boxed and COMMITS_YOURSELF not in boxed
    assert "## Your sandbox" in boxed
    assert COMMITS_YOURSELF in free and "## Your sandbox" not in free



@needs_bwrap
def test_the_agents_ssh_agent_socket_is_out_of_reach(repo: Path) -> None:
    import socket

    from conductor.exec.base import Request
    from conductor.exec.local import LocalExecutor
    from conductor.run.sandboxing import resolve
    from conductor.spec.model import SandboxSpec

    wt = repo / "wt"
    wt.mkdir()
    path = str(repo / "agent.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        probe = ["python3", "-c", "import socket, sys; s = socket.socket(socket.AF_UNIX); "
                 f"s.connect({path!r}); print('connected')"]  # fmt: skip
        said = {}
        for agent_sock in ("", path):  # a read-only mount alone does not stop a connect
            env = {**os.environ, "SSH_AUTH_SOCK": agent_sock}
            policy = resolve(SandboxSpec(), "shell", worktree=wt, repo=repo, env=env)
            lines: list[str] = []
            LocalExecutor().run(Request(probe, wt, env, sandbox=policy, on_line=lines.append))
            said[agent_sock] = lines[-1]
    assert said[""] == "connected"
    assert said[path].endswith("PermissionError: [Errno 13] Permission denied")


@needs_bwrap
def test_a_writable_path_that_cannot_be_made_fails_the_task_cleanly(repo: Path) -> None:
    write_workflow(repo, """
        version: 1
        name: t
        defaults: {retries: 0}
        tasks:
          T1: {run: "true", sandbox: {read_write: [/proc/no-such-dir/cache]}}
        """)
    code, events, err = run_json(repo, "wf.yaml")
    assert code == 1 and "Traceback" not in err, err
    (failed,) = [e["data"] for e in events if e["kind"] == "task_failed"]
    assert failed["error"].startswith("sandbox: cannot prepare /proc/no-such-dir"), failed
