"""The host's side of a sandbox's allow-listed network: where every connection is decided.

A sandbox with ``network: [host:port, …]`` has its own network namespace with nothing in
it but loopback. Inside, exec/forward.py listens on each allowed loopback endpoint (and on
one more port for a proxy) and carries connections over unix sockets in a directory that
is bind-mounted into the sandbox. Here, one asyncio loop on a thread per sandboxed command
serves those sockets:

* ``ep-<i>.sock``: connections to the i-th allowed loopback endpoint (a local model server),
  relayed to the real one, so the agent reaches it at the address it was configured with;
* ``proxy.sock``: an HTTP proxy the command is offered as ``HTTPS_PROXY`` / ``HTTP_PROXY``
  (the agent CLIs honour them): ``CONNECT host:port`` or an absolute-form request to an
  allowed endpoint is relayed, anything else is answered ``403`` and counted by target.

What the kernel refuses inside the namespace (a closed port, no route out) is counted by
exec/sandbox.py; what this proxy refuses is counted here, by name, for the attempt's log.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from conductor.exec.sandbox import Endpoint

PROXY_PORT = 3128  # inside the sandbox; moved up when an allowed endpoint uses it
_HEAD_MAX = 65536
_START_S = 10.0
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _parse_target(target: str, default_port: int) -> Endpoint | None:
    host, sep, port = target.rpartition(":")
    if not sep or "]" in port:
        host, port = target, str(default_port)
    host = host.strip("[]").lower().rstrip(".")
    return Endpoint(host, int(port)) if port.isdigit() and host else None


def _absolute_form(line: str) -> tuple[Endpoint | None, str]:
    """``GET http://host:port/path HTTP/1.1`` → (host:port, ``GET /path HTTP/1.1``)."""
    method, _, rest = line.partition(" ")
    url, _, version = rest.partition(" ")
    if not url.lower().startswith("http://"):
        return None, line
    hostport, slash, path = url[7:].partition("/")
    return _parse_target(hostport, 80), f"{method} {slash}{path} {version}"


class Relay:
    """The relays of one sandboxed command; ``refused`` counts refusals by target."""

    def __init__(self, allow: Sequence[Endpoint], avoid_ports: Sequence[int] = ()) -> None:
        self.allow = frozenset(allow)
        self.loopback = [e for e in allow if e.loopback]
        taken = {e.port for e in self.loopback} | set(avoid_ports)
        self.proxy_port = next(p for p in range(PROXY_PORT, 65536) if p not in taken)
        self.dir = Path(tempfile.mkdtemp(prefix="cnd-net-"))  # short: socket paths are
        self.refused: collections.Counter[str] = collections.Counter()  # limited to 107 bytes
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="sandbox-relay")  # fmt: skip
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def listeners(self) -> list[tuple[str, int, str]]:
        """What exec/forward.py listens on inside: (host, port, unix socket)."""
        out = [(e.host, e.port, str(self.dir / f"ep-{i}.sock"))
               for i, e in enumerate(self.loopback)]  # fmt: skip
        return [*out, ("127.0.0.1", self.proxy_port, str(self.dir / "proxy.sock"))]

    def proxy_env(self) -> dict[str, str]:
        url = f"http://127.0.0.1:{self.proxy_port}"
        direct = "localhost,127.0.0.1,::1"  # loopback endpoints are relayed as they are
        return {"HTTPS_PROXY": url, "https_proxy": url, "HTTP_PROXY": url, "http_proxy": url,
                "NO_PROXY": direct, "no_proxy": direct}  # fmt: skip

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(_START_S)

    def stop(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):  # a wedged loop must not hang the attempt
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(_START_S)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_START_S)
        if not self._thread.is_alive():
            self._loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def counts(self) -> list[tuple[str, int]]:
        with self._lock:
            return sorted(self.refused.items())

    # ---------------------------------------------------------------- on the loop

    async def _serve(self) -> None:
        for i, e in enumerate(self.loopback):
            direct = functools.partial(self._direct, target=e)
            path = str(self.dir / f"ep-{i}.sock")
            self._servers.append(await asyncio.start_unix_server(self._tracked(direct), path))
        self._servers.append(await asyncio.start_unix_server(
            self._tracked(self._proxy), str(self.dir / "proxy.sock")))  # fmt: skip

    def _tracked(self, handler: Handler) -> Handler:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                await handler(reader, writer)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass
            finally:
                writer.close()
                if task is not None:
                    self._tasks.discard(task)

        return run

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0)

    async def _direct(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      target: Endpoint) -> None:  # fmt: skip
        up_r, up_w = await asyncio.open_connection(target.host, target.port)
        await _splice(reader, writer, up_r, up_w)

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _HEAD_MAX:
            return
        first, _, rest = head.decode("latin-1").partition("\r\n")
        connect = first.upper().startswith("CONNECT ")
        if connect:
            target, line = _parse_target(first.split(" ")[1] if " " in first else "", 443), ""
        else:
            target, line = _absolute_form(first)
        if target is None or target not in self.allow:
            shown = str(target) if target is not None else first[:80]
            with self._lock:
                self.refused[f"{shown} (not in the network allow-list)"] += 1
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
                         b"Connection: close\r\n\r\nconductor sandbox: " + shown.encode()
                         + b" is not in this task's network allow-list\n")  # fmt: skip
            await writer.drain()
            return
        try:
            up_r, up_w = await asyncio.open_connection(target.host, target.port)
        except OSError as exc:
            writer.write(f"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n{exc}\n".encode())
            await writer.drain()
            return
        if connect:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            up_w.write(f"{line}\r\n{rest}".encode("latin-1"))
        await _splice(reader, writer, up_r, up_w)


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except OSError:
        pass


async def _splice(r1: asyncio.StreamReader, w1: asyncio.StreamWriter,
                  r2: asyncio.StreamReader, w2: asyncio.StreamWriter) -> None:  # fmt: skip
    try:
        await asyncio.gather(_copy(r1, w2), _copy(r2, w1))
    finally:
        w2.close()
