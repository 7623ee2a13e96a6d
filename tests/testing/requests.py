"""Building executor requests in tests with the keyword style of the old call sites."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from conductor.exec.base import Limits, Request


def request(argv: Sequence[str], cwd: Path, **kw: Any) -> Request:
    """A Request; ``timeout_s``, ``idle_timeout_s`` and ``grace_s`` become its Limits, and
    ``env`` defaults to this process's environment."""
    limits = Limits(
        timeout_s=kw.pop("timeout_s", None),
        idle_s=kw.pop("idle_timeout_s", None),
        grace_s=kw.pop("grace_s", None),
    )
    kw.setdefault("env", dict(os.environ))
    return Request(list(argv), cwd=cwd, limits=limits, **kw)
