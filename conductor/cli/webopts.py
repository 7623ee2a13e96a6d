"""`--web` of `run` and `watch`: the live page served alongside, from a thread.

Apart from serve_cmds.py so that importing it registers no command (the help lists
commands in the order they are registered).
"""

from __future__ import annotations

import os
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import typer

from conductor.errors import UserError

WEB_OPT = typer.Option(
    False, "--web", help="Also serve the live page on 127.0.0.1 while this runs (web extra)."
)


def check_web(web: bool, detach: bool = False) -> None:
    """Refuse `--web` before anything starts where it cannot work."""
    if not web:
        return
    if detach:
        raise UserError("--web needs the run in the foreground",
                        hint="run `conductor serve` beside a detached run")  # fmt: skip
    from conductor.web.server import require_extra

    require_extra("run --web")


def page_alongside(web: bool, db: Path, run_id: str) -> AbstractContextManager[object]:
    """The page of ``run_id`` served while the block runs; nothing without ``--web``."""
    if not web:
        return nullcontext()
    from conductor.web.server import alongside

    return alongside(db, run_id, sys.stderr, os.environ)
