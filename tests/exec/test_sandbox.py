"""The bubblewrap sandbox at the executor (issue 15): each rule of a policy, with real
processes. A refused write or read is the command's own EROFS / EACCES; what the network
refused is counted and noted in the log; nothing the command started outlives it."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conductor.exec.base import ProcessResult
from conductor.exec.local import LocalExecutor
from conductor.exec.sandbox import (
    Endpoint,
    SandboxPolicy,
    _count,
    bwrap_argv,
    bwrap_path,
    unavailable,
)
from tests.testing.hello import GET, hello_servers
from tests.testing.procs import pids_with
from tests.testing.requests import request

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))
FAST = LocalExecutor(grace_s=0.3)


@pytest.fixture
def box(tmp_path: Path) -> dict[str, Path]:
    """A worktree beside a "main checkout" and a home with a key, all under tmp."""
    wt, main, home = tmp_path / "wt", tmp_path / "main", tmp_path / "home"
    for d in (wt, main, home / ".ssh"):
        d.mkdir(parents=True)
    (main / "README.md").write_text("main\n")
    (main / ".env").write_text("SECRET=1\n")
    (home / ".ssh" / "id_rsa").write_text("FAKE KEY\n")
    (wt / ".git").write_text(f"gitdir: {main}/.git/worktrees/wt\n")
    return {"tmp": tmp_path, "wt": wt, "main": main, "home": home}


def policy(b: dict[str, Path], **kw: object) -> SandboxPolicy:
    kw.setdefault("read_only", (b["wt"] / ".git",))
    kw.setdefault("denied", (b["home"] / ".ssh", b["main"] / ".env"))
    return SandboxPolicy(b["wt"], visible=(b["tmp"],), **kw)  # type: ignore[arg-type]


def run(b: dict[str, Path], script: str, pol: SandboxPolicy, **kw: object) -> ProcessResult:
    env = {**os.environ, "HOME": str(b["home"])}
    req = request(["bash", "-c", script], b["wt"], env=env, log_path=b["tmp"] / "log",
                  sandbox=pol, **kw)  # fmt: skip
    return FAST.run(req)


def log(b: dict[str, Path]) -> str:
    return (b["tmp"] / "log").read_text()


@pytest.fixture
def servers() -> Iterator[list[int]]:
    with hello_servers(2) as ports:
        yield ports


def test_only_the_worktree_and_tmp_are_writable(box: dict[str, Path]) -> None:
    script = ("echo ok > inside.txt; echo x > ../main/README.md; echo x > ../outside.txt; "
              "echo x > .git; echo t > /tmp/t && cat /tmp/t; touch /etc/evil; true")  # fmt: skip
    res = run(box, script, policy(box))
    assert res.ok, log(box)
    assert (box["wt"] / "inside.txt").read_text() == "ok\n"
    assert (box["main"] / "README.md").read_text() == "main\n"
    assert not (box["tmp"] / "outside.txt").exists()
    assert (box["wt"] / ".git").read_text().startswith("gitdir:")  # read-only inside
    text = log(box)
    assert text.count("Read-only file system") == 4, text
    assert "\nt\n" in text  # /tmp is writable, and private:
    assert not Path("/tmp/t").exists() or Path("/tmp/t").read_text() != "t\n"


def test_denied_paths_are_unreadable(box: dict[str, Path]) -> None:
    res = run(box, "cat ~/.ssh/id_rsa; ls ~/.ssh; cat ../main/.env; cat ../main/README.md",
              policy(box))  # fmt: skip
    text = log(box)
    assert res.exit_code == 0, text
    assert "FAKE KEY" not in text and "SECRET" not in text
    assert text.count("Permission denied") == 3, text
    assert "\nmain\n" in text  # the rest of the main checkout stays readable


def test_what_the_command_starts_ends_with_it(box: dict[str, Path]) -> None:
    token = f"sbx-{uuid.uuid4().hex[:8]}"
    script = f"setsid bash -c 'exec -a {token} sleep 1000' & nohup sleep 1001 & echo started"
    res = run(box, script, policy(box))
    assert res.ok, log(box)
    assert pids_with(token) == []


def test_a_timeout_stops_the_whole_sandbox(box: dict[str, Path]) -> None:
    token = f"sbx-{uuid.uuid4().hex[:8]}"
    res = run(box, f"setsid bash -c 'exec -a {token} sleep 1000' & sleep 1000", policy(box),
              timeout_s=0.5)  # fmt: skip
    assert res.reason == "timeout"
    assert pids_with(token) == []


# ---------------------------------------------------------------- network


# through the proxy to an allowed endpoint: a CONNECT tunnel, and an absolute-form GET
VIA_PROXY = ("python3 - \"$1\" <<'EOF'\nimport http.client, os, sys\n"
             "proxy = ('127.0.0.1', int(os.environ['HTTP_PROXY'].split(':')[-1]))\n"
             "c = http.client.HTTPConnection(*proxy)\nc.set_tunnel('127.0.0.1', int(sys.argv[1]))\n"
             "c.request('GET', '/')\nprint('tunnel:', c.getresponse().read().decode())\n"
             "c = http.client.HTTPConnection(*proxy)\n"
             "c.request('GET', f'http://127.0.0.1:{sys.argv[1]}/')\n"
             "print('absolute:', c.getresponse().read().decode())\nEOF\n")  # fmt: skip
CONNECT = ("python3 - <<'EOF'\nimport http.client, os\n"
           "c = http.client.HTTPConnection('127.0.0.1', int(os.environ['HTTPS_PROXY'].split(':')[-1]))\n"
           "c.set_tunnel('evil.example', 443)\n"
           "try:\n    c.connect()\nexcept OSError as e:\n    print('tunnel refused:', e)\nEOF\n")  # fmt: skip


def test_no_network_leaves_only_loopback_and_counts_refusals(
    box: dict[str, Path], servers: list[int]
) -> None:
    res = run(box, f"{GET} http://127.0.0.1:{servers[0]}/ || echo unreachable", policy(box))
    text = log(box)
    assert "hello from" not in text and "unreachable" in text
    assert dict(res.refused).get("connections inside its network namespace (closed ports, "
                                 "no route out)", 0) >= 1, res.refused  # fmt: skip
    assert "# conductor: sandbox refused connections inside" in text


def test_allowed_endpoint_reachable_others_refused(
    box: dict[str, Path], servers: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed, other = servers
    pol = policy(box, network="allow", allow=(Endpoint("127.0.0.1", allowed),))
    script = (f"{GET} http://127.0.0.1:{allowed}/; {GET} http://127.0.0.1:{other}/ "
              f"|| echo other unreachable\n{CONNECT}set -- {allowed}\n{VIA_PROXY}")  # fmt: skip
    made: list[str] = []  # this run's relay dirs only: tests side by side make their own
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args: Any, **kw: Any) -> str:
        made.append(real_mkdtemp(*args, **kw))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    res = run(box, script, pol)
    text = log(box)
    relays = [d for d in made if Path(d).name.startswith("cnd-net-")]
    assert relays and not any(Path(d).exists() for d in relays)  # the relay's sockets are gone
    assert f"hello from {allowed}" in text, text
    assert f"hello from {other}" not in text and "other unreachable" in text
    assert "tunnel refused" in text and "403" in text
    assert f"tunnel: hello from {allowed}" in text and f"absolute: hello from {allowed}" in text
    refused = dict(res.refused)
    assert refused["evil.example:443 (not in the network allow-list)"] == 1, refused
    assert sum(refused.values()) >= 2
    assert "# conductor: sandbox refused evil.example:443" in text


def test_full_network_has_no_namespace_of_its_own(box: dict[str, Path], servers: list[int]) -> None:
    res = run(box, f"{GET} http://127.0.0.1:{servers[0]}/", policy(box, network="full"))
    assert res.ok and "hello from" in log(box)
    assert res.refused == ()


# ---------------------------------------------------------------- pure parts


def test_mounts_apply_parents_first_and_the_specific_rule_last(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".cfg" / "secret").mkdir(parents=True)
    pol = SandboxPolicy(tmp_path / "wt", writable=(home / ".cfg", home),
                        denied=(home / ".cfg" / "secret",), network="full")  # fmt: skip
    argv = bwrap_argv(pol, ["true"])
    assert argv[0] == bwrap_path()
    order = [argv[i + 1] for i, a in enumerate(argv) if a in ("--bind-try", "--tmpfs")]
    assert order == ["/tmp", str(tmp_path / "wt"), str(home), str(home / ".cfg"),
                     str(home / ".cfg" / "secret")]  # fmt: skip
    assert "--unshare-net" not in argv and "--unshare-pid" in argv
    assert argv[-2:] == ["--", "true"]


def test_refusal_counters_are_read_from_snmp() -> None:
    snmp = ("Ip: Forwarding OutNoRoutes\nIp: 2 3\nTcp: ActiveOpens AttemptFails\nTcp: 9 2\n"
            "Udp: InDatagrams NoPorts\nUdp: 4 1\n")  # fmt: skip
    assert _count(snmp) == 6
    assert _count("Ip6OutNoRoutes 2\nUdp6NoPorts 1\nIp6InReceives 50\n") == 3


def test_a_machine_without_bwrap_is_told_how_to_fix_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    bwrap_path.cache_clear()
    unavailable.cache_clear()
    try:
        assert unavailable() == "bubblewrap (`bwrap`) is not installed"
    finally:
        monkeypatch.undo()
        bwrap_path.cache_clear()
        unavailable.cache_clear()


@pytest.mark.parametrize("bound_parent", [False, True])
def test_a_tool_reached_through_a_symlink_under_tmp_still_runs(
    box: dict[str, Path], bound_parent: bool
) -> None:
    """A PATH entry under /tmp that goes through a symlink (tools linked into a checkout
    under /tmp, the checkout itself shown) still runs: bwrap once failed on it with
    "Can't mkdir parents"."""
    outside = Path(tempfile.mkdtemp(prefix="conductor-tools-", dir="/var/tmp"))
    try:
        (outside / "bin").mkdir()
        (outside / "bin" / "hello-tool").write_text("#!/bin/sh\necho tool ran\n")
        (outside / "bin" / "hello-tool").chmod(0o755)
        checkout = box["tmp"] / "checkout"
        checkout.mkdir()
        (checkout / "tools").symlink_to(outside)
        env = {**os.environ, "HOME": str(box["home"]),
               "PATH": f"{checkout / 'tools' / 'bin'}:{os.environ['PATH']}"}  # fmt: skip
        pol = SandboxPolicy(box["wt"], visible=(checkout,) if bound_parent else ())
        req = request(["bash", "-c", "hello-tool"], box["wt"], env=env,
                      log_path=box["tmp"] / "log", sandbox=pol)  # fmt: skip
        assert FAST.run(req).ok, log(box)
        assert "tool ran" in log(box)
    finally:
        shutil.rmtree(outside, ignore_errors=True)


def test_an_npm_installed_cli_under_tmp_runs_with_its_packages(box: dict[str, Path]) -> None:
    """A CLI installed by npm into a checkout under /tmp (CI clones there): its
    node_modules/.bin entry links into its package, which loads a sibling package."""
    modules = box["tmp"] / "checkout" / "node_modules"
    (modules / "cli" / "bin").mkdir(parents=True)
    (modules / "cli-linux" ).mkdir()
    (modules / "cli-linux" / "native.sh").write_text("echo native part ran\n")
    main = modules / "cli" / "bin" / "cli.sh"
    main.write_text('#!/bin/sh\n. "$(dirname "$(readlink -f "$0")")/../../cli-linux/native.sh"\n')
    main.chmod(0o755)
    (modules / ".bin").mkdir()
    (modules / ".bin" / "the-cli").symlink_to("../cli/bin/cli.sh")
    env = {**os.environ, "HOME": str(box["home"]),
           "PATH": f"{modules / '.bin'}:{os.environ['PATH']}"}  # fmt: skip
    req = request(["bash", "-c", "the-cli"], box["wt"], env=env, log_path=box["tmp"] / "log",
                  sandbox=SandboxPolicy(box["wt"]))  # fmt: skip
    assert FAST.run(req).ok, log(box)
    assert "native part ran" in log(box)
