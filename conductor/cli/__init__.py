"""The command line: thin typer commands that wire spec, plan, engine and store together.

Only typer and the standard library are imported here, so `conductor --help` stays
fast; each command imports what it needs when it runs.
"""

from __future__ import annotations

from conductor.cli import (  # noqa: F401  (importing registers the commands)
    approve_cmds,
    attach_cmd,
    init_cmds,
    inspect_cmds,
    manage_cmds,
    run_cmds,
    serve_cmds,
    steer_cmds,
    view_cmds,
)
from conductor.cli.app import app, main

__all__ = ["app", "main"]
