"""Shell completion of conductor's placeholders: WORKFLOW files, RUN ids, TASK ids.

`conductor --install-completion` installs typer's completion script; it calls conductor
back with the words typed so far, and these functions answer. They read the state store
with sqlite3 alone (no engine, no git) and never fail: a completion that raises would
print a traceback into the user's prompt.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

_MAX_FILES = 200  # workflow files offered: enough for any repository, cheap to find
_SKIP_DIRS = {".git", ".conductor", "node_modules", ".venv", "venv", "__pycache__"}


def workflows(_ctx: Any, _param: Any, incomplete: str) -> list[str]:
    """YAML files beneath the working directory (three levels), nearest first."""
    found: list[str] = []
    try:
        _walk(Path("."), 0, incomplete, found)
    except OSError:
        return found
    return sorted(found, key=lambda p: (p.count("/"), p))


def _walk(d: Path, depth: int, incomplete: str, found: list[str]) -> None:
    for p in sorted(d.iterdir()):
        if len(found) >= _MAX_FILES:
            return
        name = p.as_posix()
        if p.is_dir() and p.name not in _SKIP_DIRS and depth < 2:
            _walk(p, depth + 1, incomplete, found)
        elif p.suffix in (".yaml", ".yml") and name.startswith(incomplete):
            found.append(name)


def _query(sql: str, args: tuple[Any, ...] = ()) -> list[str]:
    from conductor.state.layout import find_state_db

    try:
        db = find_state_db(Path.cwd())
        if db is None:
            return []
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
        try:
            return [str(r[0]) for r in con.execute(sql, args)]
        finally:
            con.close()
    except (sqlite3.Error, OSError):
        return []


def runs(_ctx: Any, _param: Any, incomplete: str) -> list[str]:
    """Recorded run ids, newest first, and `latest`."""
    ids = _query("SELECT id FROM runs WHERE id LIKE ? ORDER BY started DESC LIMIT 50",
                 (incomplete + "%",))  # fmt: skip
    return ids + (["latest"] if "latest".startswith(incomplete) else [])


def tasks(ctx: Any, _param: Any, incomplete: str) -> list[str]:
    """Task ids of the run named before it on the command line (else of the newest run)."""
    run = (getattr(ctx, "params", None) or {}).get("run")
    if not run or run == "latest":
        run = next(iter(_query("SELECT id FROM runs ORDER BY started DESC LIMIT 1")), "")
    return _query("SELECT task_id FROM tasks WHERE run_id LIKE ? AND task_id LIKE ? "
                  "ORDER BY rowid", (run + "%", incomplete + "%"))  # fmt: skip


# placeholder (as `--help` names it) -> what completes it
BY_METAVAR: dict[str, Callable[[Any, Any, str], list[str]]] = {
    "WORKFLOW": workflows, "RUN": runs, "TASK": tasks, "TASK|GROUP": tasks,
}  # fmt: skip
