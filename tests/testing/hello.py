"""Tiny HTTP servers on the host's loopback that say which port they are: what a sandbox
may or may not reach (tests/exec/test_sandbox.py, tests/run/test_sandbox.py)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# a GET from inside a task, with the python every machine running the tests has
GET = ('python3 -c "import sys,urllib.request as u; print(u.urlopen(sys.argv[1]).read()'
       '.decode())"')  # fmt: skip


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(f"hello from {getattr(self.server, 'server_port', '?')}".encode())

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def hello_servers(n: int = 2) -> Iterator[list[int]]:
    """``n`` servers answering `hello from PORT`; their ports."""
    up = [ThreadingHTTPServer(("127.0.0.1", 0), _Hello) for _ in range(n)]
    for s in up:
        threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield [int(s.server_address[1]) for s in up]
    finally:
        for s in up:
            s.shutdown()
            s.server_close()
