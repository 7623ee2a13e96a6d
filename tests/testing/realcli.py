"""Helpers for driving the real, unmodified agent CLIs against tests/modelserver.py.

The CLIs are installed by ``scripts/install_agents.sh`` into ``.agent-clis/`` at the repo root
(or wherever ``CONDUCTOR_AGENTS_BIN`` points); an installed copy on PATH is used otherwise.
Everything an agent reads is isolated: a fresh writable HOME, a CODEX_HOME holding only
the config written here, and endpoints on 127.0.0.1. Nothing here talks to the internet.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.testing.paths import FAKES, ROOT

# not `.agents/`: codex reads skills from a workspace's .agents/ folder
LOCAL_PREFIX = ROOT / ".agent-clis"
LOCAL_BIN = LOCAL_PREFIX / "node_modules" / ".bin"
# A model codex ships metadata for: with an unknown name it warns on every run and offers
# no apply_patch tool.
CODEX_MODEL = "gpt-5.5"


def find_cli(name: str) -> str | None:
    """Absolute path of an installed CLI (``claude`` or ``codex``), or None."""
    override = os.environ.get("CONDUCTOR_AGENTS_BIN")
    for folder in (Path(override) if override else None, LOCAL_BIN):
        if folder is not None and (folder / name).is_file() and os.access(folder / name, os.X_OK):
            return str(folder / name)
    found = shutil.which(name, path=_path_without_fakes())
    return found


def _path_without_fakes() -> str:
    """PATH without tests/fakes, whose fake `claude`/`codex` must not pass for the real ones."""
    fakes = str(FAKES)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(p for p in parts if p and os.path.abspath(p) != fakes)


def missing_reason(name: str) -> str:
    return (
        f"the real `{name}` CLI is not installed: run scripts/install_agents.sh "
        f"(installs into {LOCAL_PREFIX}) or set CONDUCTOR_AGENTS_BIN"
    )


def codex_config(model_url: str, model: str = CODEX_MODEL) -> str:
    """config.toml pointing codex at the scripted server (codex ignores OPENAI_BASE_URL)."""
    return f"""\
model = "{model}"
model_provider = "scripted"

[model_providers.scripted]
name = "scripted"
base_url = "{model_url}/v1"
wire_api = "responses"
env_key = "OPENAI_API_KEY"
# fail fast: tests script their own errors and must not wait for codex's backoff
request_max_retries = 1
stream_max_retries = 0

[features]
plugins = false

[analytics]
enabled = false
"""


def _codex_home(root: Path) -> Path:
    """CODEX_HOME outside the system temp dir: codex 0.169 refuses to make its helper
    binaries (apply_patch among them) under /tmp, and where bubblewrap is installed its
    sandbox then cannot write a file at all. A user's ~/.codex never hits this."""
    temp = Path(tempfile.gettempdir()).resolve()
    if not root.resolve().is_relative_to(temp) or not Path("/var/tmp").is_dir():
        return root / "agent-home" / ".codex"
    path = Path(tempfile.mkdtemp(prefix="conductor-codex-home-", dir="/var/tmp"))
    atexit.register(shutil.rmtree, path, True)
    return path


@dataclass(frozen=True)
class AgentSandbox:
    """An isolated home for the agents of one test, and the environment to run them in."""

    home: Path
    codex_home: Path
    model_url: str

    @classmethod
    def create(cls, root: Path, model_url: str) -> AgentSandbox:
        home, codex_home = root / "agent-home", _codex_home(root)
        home.mkdir(parents=True, exist_ok=True)
        codex_home.mkdir(parents=True, exist_ok=True)
        (codex_home / "config.toml").write_text(codex_config(model_url))
        return cls(home, codex_home, model_url)

    def env(self) -> dict[str, str]:
        """Variables for `conductor run`; agents inherit them."""
        bins = [str(Path(p).parent) for p in (find_cli("claude"), find_cli("codex")) if p]
        venv = str(Path(sys.executable).parent)  # the `conductor` executable and its python
        return {
            "PATH": os.pathsep.join([*dict.fromkeys(bins), venv, _path_without_fakes()]),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "ANTHROPIC_BASE_URL": self.model_url,
            "ANTHROPIC_API_KEY": "test-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "IS_SANDBOX": "1",  # lets --dangerously-skip-permissions run as root
            "CODEX_HOME": str(self.codex_home),
            "OPENAI_API_KEY": "test-key",
        }


# ------------------------------------------------------------------------ leftover processes


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[2])


def _environ_has(pid: int, entry: bytes) -> bool:
    try:
        return entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def live_processes(pgid: int | None, run_id: str) -> list[str]:
    """Processes still alive (zombies excluded) of an agent: in its process group, or
    anywhere with the run's CONDUCTOR_RUN_ID (children that started their own session)."""
    entry = f"CONDUCTOR_RUN_ID={run_id}".encode()
    found: list[str] = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        stat = _stat(int(name))
        if stat is None or stat[0] in ("Z", "X"):  # PID 1 here reaps zombies slowly
            continue
        if stat[1] == pgid or _environ_has(int(name), entry):
            found.append(f"{name} [{stat[0]}] {_cmdline(int(name))}")
    return found
