"""Commands of the web extra: serve (the page, SSE, /metrics) and metrics (printed once)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from conductor.cli.app import command

REPO_OPT = typer.Option(
    None, "--repo", help="The repository whose runs to read (default: the current one)."
)


@command("serve")
def serve_cmd(
    port: int = typer.Option(8765, "--port", "-p", help="Port to listen on (0: any free one)."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind; anything but loopback needs a token."
    ),
    repo: Path | None = REPO_OPT,
) -> None:
    """Serve the runs as a web page (live DAG, gantt, logs, diffs) with SSE and /metrics."""
    from conductor.web.server import serve

    raise typer.Exit(serve(repo or Path.cwd(), host, port, sys.stdout, os.environ))


@command("metrics")
def metrics_cmd(repo: Path | None = REPO_OPT) -> None:
    """Print the Prometheus metrics once (for node_exporter's textfile collector)."""
    from conductor.web.server import metrics_once

    sys.stdout.buffer.write(metrics_once(repo or Path.cwd()))
    sys.stdout.flush()

