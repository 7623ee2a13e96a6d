"""The web page of runs, server-sent events and /metrics: the optional ``web`` extra.

Nothing here is imported by the rest of conductor, and this file imports nothing from
the extra, so `import conductor` and every other command work without it installed;
`conductor serve` asks ``missing_extra`` first and says what to install.
"""

from __future__ import annotations

import importlib.util

# the distributions of `conductor-dag[web]`, by the module each installs
EXTRA = {"starlette": "starlette", "uvicorn": "uvicorn", "prometheus_client": "prometheus_client"}


def missing_extra() -> list[str]:
    """The packages of the extra that are not importable here (none: all present)."""
    return [dist for mod, dist in EXTRA.items() if importlib.util.find_spec(mod) is None]
