"""Starting the web server: the checks that exit 2, the token rule, and uvicorn.

uvicorn, because it is the reference ASGI server (the one Starlette documents and tests
against), pure Python with h11 when installed without extras, and it runs in a thread
as easily as in the foreground, which `run --web` needs. The listening socket is bound
here, before uvicorn starts, so a port in use is one clear message and exit 2 instead of
a log line and a server that is not there; `--port 0` takes a free port and prints it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import secrets
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from conductor.errors import UserError
from conductor.state.layout import find_state_db
from conductor.state.readonly import ReadOnlyStore, open_readonly
from conductor.web import missing_extra

if TYPE_CHECKING:
    import uvicorn

TOKEN_ENV = "CONDUCTOR_SERVE_TOKEN"
DEFAULT_PORT = 8765


def require_extra(command: str) -> None:
    missing = missing_extra()
    if missing:
        raise UserError(
            f"`conductor {command}` needs the web extra ({', '.join(missing)} not installed)",
            hint="pip install 'conductor-dag[web]'",
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def pick_token(host: str, root: Path, environ: Mapping[str, str]) -> str | None:
    """None on loopback; elsewhere the configured token, else a fresh random one."""
    if is_loopback(host):
        return None
    from conductor.spec.config import load_config

    configured = environ.get(TOKEN_ENV) or load_config(root, environ).values.get("serve.token")
    return str(configured) if configured else secrets.token_urlsafe(24)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a UserError saying why not."""
    try:
        family, kind, proto, _name, addr = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM)[0]  # fmt: skip
    except socket.gaierror as exc:
        raise UserError(f"cannot bind to host `{host}` ({exc.strerror})",
                        hint="use an address of this machine, e.g. 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is in use",
                            hint="pick another with --port N (0: any free port)") from None
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror})",
                        hint="use an address of this machine and a port above 1023") from None
    sock.set_inheritable(False)
    return sock


def url_of(sock: socket.socket, host: str, token: str | None) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


@dataclass
class Server:
    """A bound, not yet running web server over one repository's store."""

    store: ReadOnlyStore
    sock: socket.socket
    token: str | None
    url: str
    uv: uvicorn.Server

    def run(self) -> None:
        """Serve until Ctrl-C (or ``stop``): open streams get two seconds to end."""
        try:
            self.uv.run(sockets=[self.sock])
        finally:
            self.close()

    def start(self) -> threading.Thread:
        """Serve from a background thread (`run --web`); ``stop`` ends it."""
        thread = threading.Thread(target=self.run, name="conductor-web", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.uv.should_exit = True

    def close(self) -> None:
        self.sock.close()
        self.store.close()


def _db(start: Path) -> Path:
    db = find_state_db(start)
    if db is None:
        raise UserError(f"no conductor runs here (no .conductor/state.db in {start} or "
                        "above)", hint="start one with `conductor run WORKFLOW`")  # fmt: skip
    return db


def metrics_once(start: Path) -> bytes:
    """`conductor metrics`: the scrape /metrics would answer, read once."""
    require_extra("metrics")
    from conductor.web.metrics import text

    with open_readonly(_db(start)) as store:
        assert isinstance(store, ReadOnlyStore)
        return text(store)


def prepare(start: Path, host: str, port: int, environ: Mapping[str, str]) -> Server:
    """Every check that exits 2, in order, then a server ready to run."""
    require_extra("serve")
    db = _db(start)
    token = pick_token(host, db.parent.parent, environ)
    store = open_readonly(db)
    try:
        sock = bind(host, port)
    except UserError:
        store.close()
        raise
    import uvicorn

    from conductor.web.app import make_app

    config = uvicorn.Config(make_app(store, token), log_level="warning", access_log=False,
                            lifespan="off", loop="asyncio", http="h11",
                            timeout_graceful_shutdown=2)  # fmt: skip
    return Server(store, sock, token, url_of(sock, host, token), uvicorn.Server(config))


@contextmanager
def alongside(db: Path, run_id: str, err: TextIO,
              environ: Mapping[str, str] = os.environ) -> Iterator[Server]:  # fmt: skip
    """`run --web` / `watch --web`: the page served from a thread while the command runs,
    on 127.0.0.1 (port 8765, or any free one when that is taken)."""
    try:
        server = prepare(db.parent.parent, "127.0.0.1", DEFAULT_PORT, environ)
    except UserError:  # 8765 is taken (another page): any free port will do
        server = prepare(db.parent.parent, "127.0.0.1", 0, environ)
    thread = server.start()
    print(f"live page: {server.url}runs/{run_id}", file=err, flush=True)
    try:
        yield server
    finally:
        server.stop()
        thread.join(10)


def serve(start: Path, host: str, port: int, out: TextIO,
          environ: Mapping[str, str] = os.environ) -> int:  # fmt: skip
    """`conductor serve`: print where, serve until Ctrl-C, exit 0."""
    server = prepare(start, host, port, environ)
    print(f"serving {server.store.path.parent.parent} at {server.url}", file=out, flush=True)
    if server.token:
        print(f"token: {server.token} (every request needs it: ?token=… or the "
              "X-Conductor-Token header)", file=out, flush=True)  # fmt: skip
    print("Ctrl-C stops", file=out, flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it obeyed
        server.run()
    print("stopped", file=out, flush=True)
    return 0
