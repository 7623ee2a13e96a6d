"""Confining one command with bubblewrap (`sandbox:`, issue 15, DESIGN §8).

The policy (:class:`SandboxPolicy`) comes resolved from run/sandboxing.py: absolute,
existing paths and parsed endpoints. Here it becomes a `bwrap` command line:

* ``--ro-bind / /``: the whole system read-only, the main checkout, the other worktrees,
  `.conductor/` and `.git` included; ``--dev /dev``, ``--proc /proc`` (of its own PID
  namespace) and ``--tmpfs /tmp``, a private /tmp. Whatever must stay visible though it
  lives under /tmp (the repository and HOME in tests) is bound back read-only.
* then, parents before children so the more specific rule wins: the writable paths
  (``--bind``: the worktree, the agent's state directory, its $CONDUCTOR_OUTPUT), the
  read-only ones (``--ro-bind``: the worktree's `.git` file, so it cannot be pointed at
  another repository) and the unreadable ones: an empty mode-000 tmpfs over a directory,
  an empty mode-000 file over a file, so a read fails with EACCES in the agent's own output.
* ``--unshare-pid`` (the attempt's end kills everything it started: when the sandbox's
  init dies the kernel kills its namespace), ``--die-with-parent``, ``--new-session`` (no
  TIOCSTI into a terminal), ``--unshare-ipc``; when conductor runs as root, no
  capabilities and an ordinary uid in a user namespace (:func:`_root_caps`);
  ``--unshare-net`` unless the network is `full`.

Git (option b of the issue): all of `.git` stays read-only, so the agent can read history
but not commit, change config or hooks, or move any ref; conductor commits its work for
it and its instructions say so (agents/briefing.py).

Network refusals inside the namespace (a closed loopback port, no route out) are counted
by the kernel in the namespace's own /proc/net/snmp: the executor opens that file from
the host side while bwrap holds the command back (``--info-fd`` / ``--block-fd``), and
reads it when the command has ended (the open file keeps the namespace's counters). The
allow-list relay and its named refusals are in exec/netrelay.py.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from conductor.exec.base import ProcessResult

if TYPE_CHECKING:
    from conductor.exec.netrelay import Relay

Network = Literal["full", "none", "allow"]
PRIVATE_TMP = Path("/tmp")
_HANDSHAKE_S = 10.0  # bwrap reports its child's pid within milliseconds unless it failed
INSTALL_HINT = (
    "install bubblewrap (`apt-get install bubblewrap`, `dnf install bubblewrap`); where it "
    "is installed but cannot create namespaces, allow unprivileged user namespaces "
    "(`sysctl -w kernel.unprivileged_userns_clone=1`, or on Ubuntu 24.04+ "
    "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`), or drop `sandbox:`"
)


@dataclass(frozen=True)
class Endpoint:
    """One allowed `host:port`."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return self.host in ("localhost", "::1") or self.host.startswith("127.")


@dataclass(frozen=True)
class SandboxPolicy:
    """What one sandboxed command may do; paths absolute and resolved, the worktree first."""

    worktree: Path
    writable: tuple[Path, ...] = ()  # besides the worktree and /tmp
    read_only: tuple[Path, ...] = ()  # read-only again inside a writable path
    denied: tuple[Path, ...] = ()  # unreadable
    visible: tuple[Path, ...] = ()  # shown read-only even where they sit under /tmp
    network: Network = "none"
    allow: tuple[Endpoint, ...] = ()  # with network "allow"
    notes: tuple[str, ...] = field(default=(), compare=False)  # for describe()

    def describe(self) -> str:
        """One line for the logs: what is writable, unreadable, reachable."""
        net = {"full": "full", "none": "none (own loopback only)"}.get(self.network)
        net = net or "only " + ", ".join(str(e) for e in self.allow)
        rw = ", ".join(str(p) for p in (self.worktree, PRIVATE_TMP, *self.writable))
        text = f"network {net}; writable {rw}"
        if self.denied:
            text += "; unreadable " + ", ".join(str(p) for p in self.denied)
        return text + "".join(f"; {n}" for n in self.notes)


# ------------------------------------------------------------------ can it run here


@functools.lru_cache(maxsize=1)
def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why no sandbox can be made on this machine (None: it can). Tried once per process,
    with the namespaces every sandbox uses, so a kernel that refuses them shows up here
    and not as a failed attempt."""
    exe = bwrap_path()
    if exe is None:
        return "bubblewrap (`bwrap`) is not installed"
    import subprocess  # only runs that ask for a sandbox pay for it

    argv = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
            "--unshare-net", "--unshare-ipc", *_root_caps(), "--", "true"]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not be run: {exc}"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return f"bubblewrap cannot create a sandbox here: {why}"
    return None


ROOT_RUNS_AS = 1000  # the uid and gid a sandbox started by root runs as, in its own userns


def _root_caps() -> list[str]:
    """As root, bwrap keeps every capability unless told (and with them `mount -o
    remount,rw /`): drop them all. And run the command as an ordinary uid in a user
    namespace of its own (mapped to root outside, so what it writes is root's): a sandbox
    inside ours, such as Codex's, can then map its own uid, which the kernel refuses for
    uid 0 without CAP_SETFCAP. As anyone else bwrap drops them and maps the user itself."""
    if os.geteuid() != 0:
        return []
    ids = ["--uid", str(ROOT_RUNS_AS), "--gid", str(ROOT_RUNS_AS)]
    return ["--unshare-user", *ids, "--cap-drop", "ALL"]


# ------------------------------------------------------------------ the command line


def _under(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def _mounts(policy: SandboxPolicy) -> list[tuple[Path, str]]:
    """(path, rule) in the order bwrap must apply them: shallower paths first, and for one
    depth writable, then read-only, then unreadable, so the more specific rule wins."""
    order = {"show": 0, "rw": 1, "ro": 2, "deny": 3}
    rules = [(p, "show") for p in policy.visible if _under(p, PRIVATE_TMP)]
    rules += [(p, "rw") for p in (policy.worktree, *policy.writable)]
    rules += [(p, "ro") for p in policy.read_only]
    rules += [(p, "deny") for p in policy.denied]
    return sorted(rules, key=lambda r: (len(r[0].parts), order[r[1]]))


def _show_args(path: Path, done: set[Path]) -> list[str]:
    """Bind ``path`` (under /tmp) read-only where it is, unless a bound parent shows it
    already. A symlink on the way that nothing shows yet (a checkout linked into a temp
    dir) is made again in the fresh /tmp, and its target shown in turn if under /tmp:
    bwrap cannot make a bind's directories through a link (it failed with "Can't mkdir
    parents")."""
    cur = PRIVATE_TMP
    for part in path.relative_to(PRIVATE_TMP).parts:
        cur = cur / part
        if cur in done:
            return []
        if cur.is_symlink():
            done.add(cur)
            real = Path(os.path.realpath(cur)) / path.relative_to(cur)
            link = ["--symlink", os.readlink(cur), str(cur)]
            return link + (_show_args(real, done) if _under(real, PRIVATE_TMP) else [])
    done.add(path)
    return ["--ro-bind-try", str(path), str(path)]


def _mount_args(policy: SandboxPolicy, empty_fds: Sequence[int]) -> list[str]:
    out: list[str] = []
    fds, shown = iter(empty_fds), set[Path]()
    for path, rule in _mounts(policy):
        p = str(path)
        if rule == "show":
            out += _show_args(path, shown)
        elif rule == "ro":
            out += ["--ro-bind-try", p, p]
        elif rule == "rw":
            out += ["--bind-try", p, p]
        elif path.is_dir():
            out += ["--perms", "0000", "--tmpfs", p]
        elif path.exists() and (fd := next(fds, None)) is not None:
            out += ["--perms", "0000", "--ro-bind-data", str(fd), p]
    return out


def bwrap_argv(
    policy: SandboxPolicy, argv: Sequence[str], *, empty_fds: Sequence[int] = (),
    info_fd: int | None = None, block_fd: int | None = None,
) -> list[str]:  # fmt: skip
    """The command line that runs ``argv`` confined by ``policy``. ``empty_fds``: one
    readable empty pipe per unreadable file (:func:`denied_files`; bwrap reads each)."""
    head = [bwrap_path() or "bwrap", "--ro-bind", "/", "/", "--dev", "/dev",
            "--proc", "/proc", "--tmpfs", str(PRIVATE_TMP)]  # fmt: skip
    tail = ["--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session",
            *_root_caps()]  # fmt: skip
    if policy.network != "full":
        tail.append("--unshare-net")
    if info_fd is not None and block_fd is not None:
        tail += ["--info-fd", str(info_fd), "--block-fd", str(block_fd)]
    mounts = _mount_args(policy, empty_fds)
    return [*head, *mounts, *tail, "--chdir", str(policy.worktree), "--", *argv]


def denied_files(policy: SandboxPolicy) -> int:
    """How many unreadable files (not directories) need an empty pipe each."""
    return sum(1 for p in policy.denied if p.exists() and not p.is_dir())


# ------------------------------------------------------------------ one sandboxed run


class Confinement:
    """One sandboxed command: its bwrap argv and inherited descriptors, the handshake that
    opens its network namespace's counters, and what those counted when it ended."""

    def __init__(self, policy: SandboxPolicy, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.env = dict(env)
        policy = self.policy = replace(policy, visible=(*policy.visible, *_runnable(self.env)))
        self._close: list[int] = []  # our ends, closed by close()
        self._child: list[int] = []  # the child's ends, closed once it has them
        empties = []
        for _ in range(denied_files(policy)):
            r, w = os.pipe()
            os.close(w)  # an empty pipe: bwrap reads EOF at once
            empties.append(r)
            self._child.append(r)
        self.relay: Relay | None = None
        if policy.network == "allow":
            policy, argv = self._relayed(policy, argv)
        info = block = None
        if policy.network != "full":
            self._info_r, info = os.pipe()
            block, self._block_w = os.pipe()
            self._child += [info, block]
            self._close += [self._info_r, self._block_w]
        self.argv = bwrap_argv(policy, argv, empty_fds=empties, info_fd=info, block_fd=block)
        self.pass_fds = tuple(self._child)
        self._snmp: list[IO[bytes]] = []

    def _relayed(
        self, policy: SandboxPolicy, argv: Sequence[str]
    ) -> tuple[SandboxPolicy, list[str]]:
        """Start the host side of an allow-list and put its forwarder in front of argv."""
        from conductor.exec.netrelay import Relay  # asyncio: only allow-lists pay for it

        port = self.env.get("CONDUCTOR_PORT", "")
        relay = self.relay = Relay(policy.allow, [int(port)] if port.isdigit() else [])
        relay.start()
        self.env.update(relay.proxy_env())
        spec = [str(part) for triple in relay.listeners() for part in triple]
        forward = str(Path(__file__).with_name("forward.py"))
        # the interpreter itself, not a virtualenv's link to it: it needs only built-in
        # modules, and a virtualenv's start-up costs it some 20 ms more in a sandbox
        python = os.path.realpath(sys.executable)
        wrapped = [python, "-I", "-S", forward, *spec, "--", *argv]
        return replace(policy, visible=(*policy.visible, relay.dir)), wrapped

    def started(self) -> None:
        """The child has its descriptors: close our copies, open its namespace's counters,
        let it go on. Never raises: without counters the command still runs confined."""
        for fd in self._child:
            os.close(fd)
        self._child = []
        if self.policy.network == "full":
            return
        pid = _child_pid(self._info_r)
        for name in ("snmp", "snmp6") if pid is not None else ():
            with contextlib.suppress(OSError):
                self._snmp.append(open(f"/proc/{pid}/net/{name}", "rb"))  # noqa: SIM115
        with contextlib.suppress(OSError):  # bwrap already gone: it failed, says why in the log
            os.write(self._block_w, b"go")

    def finished(self, result: ProcessResult, note: Callable[[str], None]) -> ProcessResult:
        """``result`` with what the sandbox refused, each refusal noted in the log."""
        refused = self.relay.counts() if self.relay is not None else []
        inside = self.refused_inside()
        if inside:
            refused.append((INSIDE, inside))
        for what, n in refused:
            times = f" ({n} times)" if n > 1 else ""
            note(f"# conductor: sandbox refused {what}{times}")
        return replace(result, refused=tuple(refused)) if refused else result

    def refused_inside(self) -> int:
        """Connections refused inside the namespace: to closed loopback ports (TCP
        AttemptFails), to addresses with no route (OutNoRoutes), to closed UDP ports on
        loopback (a DNS lookup with no resolver: NoPorts)."""
        total = 0
        for fh in self._snmp:
            try:
                fh.seek(0)
                total += _count(fh.read().decode(errors="replace"))
            except OSError:
                continue
        return total

    def close(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        for fd in [*self._child, *self._close]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._child, self._close = [], []
        for fh in self._snmp:
            fh.close()
        self._snmp = []


def _runnable(env: Mapping[str, str]) -> list[Path]:
    """What must stay visible for the command to run at all, where it lies under /tmp
    (a checkout or a virtualenv there, tests): its PATH, and this interpreter and
    package (`conductor progress`, the forwarder)."""
    dirs = [Path(p) for p in env.get("PATH", "").split(os.pathsep) if p.startswith("/")]
    # npm's node_modules/.bin holds links into its packages (and they load their siblings):
    # the whole node_modules must show, not just the links
    dirs = [d.parent if d.name == ".bin" and d.parent.name == "node_modules" else d
            for d in dirs]  # fmt: skip
    dirs += [Path(sys.executable).parent, Path(sys.prefix), Path(__file__).parents[2],
             Path(os.path.realpath(sys.executable)).parents[1]]  # fmt: skip
    inside = [d for d in dict.fromkeys(dirs) if d != PRIVATE_TMP and _under(d, PRIVATE_TMP)]
    return [d for d in inside if d.is_dir()]  # never /tmp itself: it stays private


def _child_pid(fd: int) -> int | None:
    """The sandbox's pid as bwrap reports it on ``--info-fd`` (JSON), or None."""
    buf = b""
    while True:
        ready, _, _ = select.select([fd], [], [], _HANDSHAKE_S)
        if not ready:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        buf += chunk
        try:
            pid = json.loads(buf).get("child-pid")
        except ValueError:
            continue
        return pid if isinstance(pid, int) else None


INSIDE = "connections inside its network namespace (closed ports, no route out)"
_COUNTERS = {("Tcp", "AttemptFails"), ("Ip", "OutNoRoutes"), ("Udp", "NoPorts"),
             ("Ip6", "OutNoRoutes"), ("Udp6", "NoPorts")}  # fmt: skip


def _count(text: str) -> int:
    """The sum of the refusal counters in /proc/net/snmp (header line, value line per
    protocol) or /proc/net/snmp6 (one `Name value` per line)."""
    total, header = 0, None
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and not words[0].endswith(":"):  # snmp6
            for proto, name in _COUNTERS:
                if words[0] == proto + name and words[1].isdigit():
                    total += int(words[1])
            continue
        if not words or not words[0].endswith(":"):
            continue
        if header is None or header[0] != words[0]:
            header = words
            continue
        proto = words[0][:-1]
        for name, value in zip(header[1:], words[1:], strict=False):
            if (proto, name) in _COUNTERS and value.lstrip("-").isdigit():
                total += int(value)
        header = None
    return total
