"""`pools:` in a workflow file (and in config): each pool's model, each task's pool, checks.

A task's pool is, most specific first: its own `pool:`, its agent profile's, `defaults`',
and otherwise the first pool offering every skill the task asks for — `local` first, then
the file's pools and then the config's, in the order written. The built-in `local` pool
(the run's `concurrency` slots, no quota, no skills) is always there; a file or config may
redefine it. Pools of the user's and the repository's config (spec/poolconfig.py) are
known to the file, which wins on a name both define.

What is checked here, located at the key that is wrong: a pool name that no pool has, and
a skill the task's pool does not offer (or, for a task naming none, that no pool offers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from conductor.errors import Diagnostic
from conductor.spec.model import DEFAULT_POOL, Loc, Pool
from conductor.spec.poolconfig import config_pools, file_pool
from conductor.spec.suggest import did_you_mean
from conductor.spec.yamlsrc import JsonPath, Source, dotted

BUILTIN = Pool(DEFAULT_POOL)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strs(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def all_pools(source: Source, *, valid: bool) -> dict[str, Pool]:
    """`local`, then the pools of the config files around the workflow file, then the
    file's own (a later one replaces an earlier one of the same name, keeping its place).
    Not ``valid`` (the checks, which also run on files the schema rejected): only names and
    skills, read defensively. A bad config pool is a UserError (file and line)."""
    start = Path(source.path).resolve().parent
    pools = {DEFAULT_POOL: BUILTIN, **config_pools(start, os.environ)}
    for name, spec in _dict(source.data.get("pools")).items():
        line, col = source.key_where(("pools", name))
        loc = Loc(source.path, line, col)
        pools[name] = (file_pool(name, spec, loc) if valid else
                       Pool(name, skills=tuple(_strs(_dict(spec).get("skills"))), loc=loc))
    return pools


class Placement:
    """Where each task of a file lands; reads the data defensively (checks run on files
    the schema rejected too)."""

    def __init__(self, data: Mapping[str, Any], pools: Mapping[str, Pool],
                 agent_of: Callable[[Any], str]) -> None:  # fmt: skip
        self.pools = pools
        self.agent_of = agent_of  # the profile a task runs with (spec/checks.py decides)
        agents = _dict(data.get("agents")).items()
        self.profiles = {name: _dict(a).get("pool") for name, a in agents}
        self.default = _dict(data.get("defaults")).get("pool")

    def named(self, task: Mapping[str, Any]) -> tuple[str, JsonPath] | None:
        """The pool the task names, directly or through its profile or `defaults`, with
        where that name is written; None when none is named."""
        agent = self.agent_of(task)
        own, profile = task.get("pool"), self.profiles.get(agent)
        if isinstance(own, str):
            return own, ("pool",)
        if isinstance(profile, str):
            return profile, ("agents", agent, "pool")
        if isinstance(self.default, str):
            return self.default, ("defaults", "pool")
        return None

    def offering(self, skills: list[str]) -> str | None:
        """The first pool offering every one of ``skills`` (`local` first)."""
        for name, pool in self.pools.items():
            if set(skills) <= set(pool.skills):
                return name
        return None

    def pool_of(self, task: Mapping[str, Any]) -> str:
        named = self.named(task)
        if named is not None:
            return named[0]
        return self.offering(_strs(task.get("skills"))) or DEFAULT_POOL


def pool_problems(source: Source, place: Placement) -> list[Diagnostic]:
    """Unknown pool names and skills no pool (or not the task's pool) offers."""
    data, out, pools = source.data, [], place.pools
    named: list[tuple[JsonPath, Any]] = [(("defaults", "pool"), place.default)]
    named += [(("agents", a, "pool"), p) for a, p in place.profiles.items()]
    for path, name in named:
        if isinstance(name, str) and name not in pools:
            out.append(_unknown(source, path, name, pools))
    for tid, raw in _dict(data.get("tasks")).items():
        task = _dict(raw)
        own = task.get("pool")
        if isinstance(own, str) and own not in pools:
            out.append(_unknown(source, ("tasks", tid, "pool"), own, pools))
            continue
        out += _skill_problems(source, tid, task, place)
    return out


def _unknown(source: Source, path: JsonPath, name: str, pools: Mapping[str, Pool]) -> Diagnostic:
    known = ", ".join(pools)
    hint = did_you_mean(name, pools) or f"pools: {known} (declare it under `pools:`)"
    return source.diag(path, f"{dotted(path)}: unknown pool `{name}`", hint)


def _skill_problems(
    source: Source, tid: str, task: Mapping[str, Any], place: Placement
) -> list[Diagnostic]:
    skills = _strs(task.get("skills"))
    if not skills:
        return []
    named = place.named(task)
    path: JsonPath = ("tasks", tid, "skills")
    if named is None:
        if place.offering(skills) is not None:
            return []
        missing = [s for s in skills if not any(s in p.skills for p in place.pools.values())]
        shown = ", ".join(f"`{s}`" for s in missing or skills)
        what = "no pool offers" if missing else "no one pool offers all of"
        listed = ", ".join(skills)
        it = "it" if len(missing) == 1 else "them"
        hint = f"add {it} to a pool's `skills:`, e.g. pools: {{mine: {{skills: [{listed}]}}}}"
        return [source.diag(path, f"{dotted(path)}: {what} {shown}", hint)]
    name, via = named
    if name not in place.pools:
        return []  # reported as an unknown pool where it is written
    pool = place.pools[name]
    through = "" if via == ("pool",) else f" (named by {dotted(via)})"
    out = []
    for i, skill in enumerate(skills):
        if skill in pool.skills:
            continue
        others = [p.name for p in place.pools.values() if skill in p.skills]
        hint = (f"offered by {', '.join(f'`{o}`' for o in others)}: write `pool: {others[0]}`"
                if others else f"add `{skill}` to the skills of pool `{name}`")  # fmt: skip
        text = f"{dotted((*path, i))}: pool `{name}`{through} does not offer skill `{skill}`"
        out.append(source.diag((*path, i), text, hint))
    return out
