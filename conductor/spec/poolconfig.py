"""Pools declared in config: the `[pools.NAME]` tables of the user's and the repository's
config files (the same files, in the same order, as spec/config.py reads).

They describe the machine rather than the phase (the seats someone has, their Ray
cluster's GPU nodes), so a workflow file may name them without declaring them. A later
file replaces a pool an earlier one declared; the workflow file's own pools beat them all.
A pool table is checked against the same schema as a pool in a workflow file.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conductor.errors import UserError
from conductor.spec.config import _line_of, _parse_toml, find_repo_root, user_config_path
from conductor.spec.model import Loc, Pool

SECTION = "pools"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # the schema's id pattern


def config_files(start: Path, environ: Mapping[str, str]) -> list[tuple[Path, str | None]]:
    """(file, the table holding conductor's keys) of every config file there is, lowest
    precedence first."""
    out: list[tuple[Path, str | None]] = []
    user = user_config_path(environ)
    if user.is_file():
        out.append((user, None))
    root = find_repo_root(start)
    if root is not None:
        if (root / "pyproject.toml").is_file():
            out.append((root / "pyproject.toml", "tool.conductor"))
        if (root / "conductor.toml").is_file():
            out.append((root / "conductor.toml", None))
    return out


def config_pools(start: Path, environ: Mapping[str, str]) -> dict[str, Pool]:
    """The pools the config files around ``start`` declare; UserError (with file and line)
    for a table that is not a valid pool."""
    pools: dict[str, Pool] = {}
    for path, table in config_files(start, environ):
        data: Any = _parse_toml(path)
        for part in table.split(".") if table else ():
            data = data.get(part) if isinstance(data, dict) else None
        section = data.get(SECTION) if isinstance(data, dict) else None
        if section is None:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if not isinstance(section, dict):
            raise UserError(f"{path}: `{SECTION}` must be a table of pools, e.g. [pools.gpu]")
        for name, spec in section.items():
            line = _line_of(text, name, f"{table}.{SECTION}" if table else SECTION) or 1
            _check(path, line, name, spec)
            pools[name] = file_pool(name, spec, Loc(str(path), line, 1))
    return pools


def file_pool(name: str, spec: Mapping[str, Any], loc: Loc | None) -> Pool:
    """One pool from its (schema-valid) mapping."""
    slots, usd = spec.get("slots"), spec.get("usd")
    return Pool(
        name=name,
        slots=None if slots is None else int(slots),
        usd=None if usd is None else float(usd),
        skills=tuple(spec.get("skills", ())),
        executor=spec.get("executor", "local"),
        resources={k: float(v) for k, v in spec.get("resources", {}).items()},
        labels={k: str(v) for k, v in spec.get("labels", {}).items()},
        loc=loc,
    )


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    from conductor.spec.schema import load_schema

    defs = load_schema()["$defs"]
    return Draft202012Validator({"$defs": defs, "$ref": "#/$defs/pool"})


def _check(path: Path, line: int, name: str, spec: Any) -> None:
    where = f"{path}:{line}"
    if not _NAME.match(name):
        raise UserError(f"{where}: `{name}` is not a valid pool name",
                        hint="letters, digits, '.', '_' and '-'")  # fmt: skip
    errors = sorted(_validator().iter_errors(spec), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        at = ".".join([SECTION, name, *map(str, err.path)])
        raise UserError(f"{where}: {at}: {err.message}",
                        hint="keys: slots, usd, skills, executor, resources, labels")  # fmt: skip
