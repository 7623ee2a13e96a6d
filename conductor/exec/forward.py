"""The sandbox's side of an allow-listed network: loopback listeners relayed to the host.

Run by bwrap inside the sandbox's network namespace, as the parent of the confined command:
``python -I -S forward.py HOST PORT SOCKET [HOST PORT SOCKET …] -- argv…``. For each triple
it listens on ``HOST:PORT`` inside the namespace (the address the agent was told: a local
model server at 127.0.0.1:8080 stays 127.0.0.1:8080) and carries every connection over the
unix socket SOCKET, which the host side (exec/netrelay.py) bound and bind-mounted in:
there conductor decides what the connection may reach. Then it runs the command and exits
with its status.

It starts with every command of an allow-listed sandbox, so it imports only built-in
modules (``_socket``, ``_thread``, ``_signal``: no enum, no re, no subprocess) and does not
import conductor: about a bare interpreter's start-up. It holds no privilege the command
lacks (same user, no capabilities); the command could kill or bypass it, but never reach
further than the host side allows.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal itself imports enum: slow
import _socket
import _thread
import os
import sys

_CHUNK = 65536


def _pump(src: _socket.socket, dst: _socket.socket, done: _thread.LockType | None) -> None:
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    for sock, how in ((dst, _socket.SHUT_WR), (src, _socket.SHUT_RD)):
        try:  # noqa: SIM105 (contextlib would cost this start-up-bound script an import)
            sock.shutdown(how)
        except OSError:
            pass
    if done is not None:
        done.release()


def _relay(fd: int, family: int, path: str) -> None:
    conn = _socket.socket(family, _socket.SOCK_STREAM, 0, fd)
    up = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        up.connect(path)
    except OSError:
        conn.close()
        up.close()
        return
    back = _thread.allocate_lock()
    back.acquire()
    _thread.start_new_thread(_pump, (up, conn, back))
    _pump(conn, up, None)
    back.acquire()  # the other direction is done too
    conn.close()
    up.close()


def _serve(listener: _socket.socket, family: int, path: str) -> None:
    while True:
        try:
            fd, _addr = listener._accept()  # type: ignore[attr-defined]  # _socket
        except OSError:
            return
        _thread.start_new_thread(_relay, (fd, family, path))


def _listen(host: str, port: int) -> list[tuple[_socket.socket, int]]:
    out = []
    for h in ["127.0.0.1", "::1"] if host == "localhost" else [host]:
        family = _socket.AF_INET6 if ":" in h else _socket.AF_INET
        sock = _socket.socket(family, _socket.SOCK_STREAM)
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        try:
            sock.bind((h, port))
        except OSError:
            sock.close()
            if h == "::1":  # no IPv6 in the namespace: IPv4 loopback is enough
                continue
            raise
        sock.listen(64)
        out.append((sock, family))
    return out


def main(args: list[str]) -> int:
    cut = args.index("--")
    spec, argv = args[:cut], args[cut + 1 :]
    for i in range(0, len(spec) - 2, 3):
        host, port, path = spec[i], int(spec[i + 1]), spec[i + 2]
        try:
            listening = _listen(host, port)
        except OSError as exc:  # a port below 1024 needs a privilege the sandbox lacks
            os.write(2, f"conductor sandbox: cannot listen on {host}:{port} inside the "
                        f"sandbox ({exc.strerror}); only the proxy in $HTTP_PROXY reaches "
                        "it\n".encode())  # fmt: skip
            continue
        for sock, family in listening:
            _thread.start_new_thread(_serve, (sock, family, path))
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ)
    except OSError as exc:
        os.write(2, f"conductor sandbox: cannot run {argv[0]}: {exc}\n".encode())
        return 127
    for sig in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP):
        _signal.signal(sig, lambda n, _f: os.kill(pid, n))
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
