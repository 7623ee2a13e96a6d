"""Building the model: a workflow file's validated data → :class:`Workflow` and its parts.

Runs only on data that passed the schema and the semantic checks, so it indexes the data
directly instead of reading it defensively. Defaults are applied here (task fields from
``defaults:``, group dependencies expanded into each task's ``deps``), so that the rest of
conductor sees one resolved model and never the raw file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conductor.spec.checks import BUILTIN_AGENTS, _agent_of, _presets
from conductor.spec.durations import parse_duration
from conductor.spec.matrix import expand_tasks
from conductor.spec.model import (
    DEFAULT_CONCURRENCY,
    DEFAULT_KEEP,
    DEFAULT_RETRIES,
    DEFAULT_STRATEGY,
    AgentProfile,
    Group,
    Loc,
    ReuseSpec,
    Task,
    TmuxSpec,
    Validator,
    Workflow,
    WorkspaceSpec,
)
from conductor.spec.pools import Placement, all_pools
from conductor.spec.sandbox import SandboxResolver
from conductor.spec.yamlsrc import JsonPath, Source


def _loc(source: Source, path: JsonPath, key: bool = True) -> Loc:
    line, col = source.key_where(path) if key else source.where(path)
    return Loc(source.path, line, col)


def _seconds(value: Any) -> float | None:
    return None if value is None else parse_duration(value)


def _build(source: Source, path: Path) -> Workflow:
    data = source.data
    defaults = data.get("defaults", {})
    workspace = data.get("workspace", {})
    groups = {gid: _group(source, gid, g) for gid, g in data.get("groups", {}).items()}
    group_deps = _group_dep_tasks(data["tasks"], groups)
    pools = all_pools(source, valid=True)
    presets = _presets(data)
    place = Placement(data, pools, lambda t: _agent_of(t, defaults.get("agent"), presets))
    builder = _TaskBuilder(source, defaults, group_deps, place)
    return Workflow(
        path=path.resolve(),
        name=data["name"],
        tasks=expand_tasks(
            data["tasks"], {tid: builder.build(tid, t) for tid, t in data["tasks"].items()}
        ),
        version=int(data["version"]),
        description=data.get("description", ""),
        base=data.get("base", "HEAD"),
        integration_branch=data.get("integration_branch") or f"conductor/{data['name']}",
        log=data.get("log"),
        strategy=data.get("strategy", DEFAULT_STRATEGY),
        concurrency=int(data.get("concurrency", DEFAULT_CONCURRENCY)),
        agents=_agents(source),
        workspace=WorkspaceSpec(
            copy=tuple(workspace.get("copy", ())),
            symlink=tuple(workspace.get("symlink", ())),
            setup=tuple(workspace.get("setup", ())),
            keep=workspace.get("keep", DEFAULT_KEEP),
            reuse=ReuseSpec(
                keep=tuple(workspace.get("reuse", {}).get("keep", ())),
                key=tuple(workspace.get("reuse", {}).get("key", ())),
            ),
        ),
        budget_usd=_usd(data.get("budget")),
        hooks={event: tuple(argv) for event, argv in data.get("on", {}).items()},
        groups=groups,
        secrets=tuple(data.get("secrets", ())),
        pools=pools,
        policy=data.get("policy"),
        deadlock_grace_s=_seconds(data.get("deadlock_grace")),
    )


def _usd(budget: Any) -> float | None:
    return float(budget["usd"]) if isinstance(budget, dict) else None


def _agents(source: Source) -> dict[str, AgentProfile]:
    agents = {name: AgentProfile(name=name, preset=p) for name, p in BUILTIN_AGENTS.items()}
    for name, spec in source.data.get("agents", {}).items():
        command = spec.get("command")
        agents[name] = AgentProfile(
            name=name,
            preset=spec.get("preset"),
            command=tuple(command) if command is not None else None,
            model=spec.get("model"),
            args=tuple(spec.get("args", ())),
            env=dict(spec.get("env", {})),
            executor=spec.get("executor", "local"),
            fallback=spec.get("fallback"),
            pool=spec.get("pool"),
            tmux=_tmux(spec.get("tmux") or {}),
            loc=_loc(source, ("agents", name)),
        )
    return agents


def _tmux(spec: dict[str, Any]) -> TmuxSpec:
    pattern = spec.get("prompt_pattern")
    return TmuxSpec(
        prompt=spec.get("prompt", TmuxSpec.prompt),
        completion=spec.get("completion", "prompt" if pattern else "idle"),
        prompt_pattern=pattern,
        idle_s=parse_duration(spec.get("idle", 5)),
        send_delay_s=parse_duration(spec["send_delay"]) if "send_delay" in spec else 0.5,
    )


def _validators(source: Source, path: JsonPath, items: list[Any]) -> tuple[Validator, ...]:
    out: list[Validator] = []
    for i, item in enumerate(items):
        loc = _loc(source, (*path, i), key=False)
        if "run" in item:
            timeout = _seconds(item.get("timeout"))
            out.append(Validator("run", run=item["run"], timeout_s=timeout, loc=loc))
        elif "exists" in item:
            out.append(Validator("exists", paths=tuple(item["exists"]), loc=loc))
        elif "contains" in item:
            spec = item["contains"]
            out.append(Validator("contains", path=spec["path"], pattern=spec["pattern"], loc=loc))
        else:
            minimum = int(item["changes"].get("min_files", 1))
            out.append(Validator("changes", min_files=minimum, loc=loc))
    return tuple(out)


def _group(source: Source, gid: str, spec: dict[str, Any]) -> Group:
    return Group(
        id=gid,
        description=spec.get("description", ""),
        depends_on=tuple(spec.get("depends_on", ())),
        validate=_validators(source, ("groups", gid, "validate"), spec.get("validate", [])),
        when=spec.get("when"),
        approve=bool(spec.get("approve", False)),
        loc=_loc(source, ("groups", gid)),
    )


def _conditions(spec: dict[str, Any], data: dict[str, Any]) -> tuple[str, ...]:
    """The `when:` conditions a task must meet: its group's, then its own."""
    group = data.get("groups", {}).get(spec.get("group", ""), {})
    return tuple(w for w in (group.get("when"), spec.get("when")) if w is not None)


def _approve(spec: dict[str, Any], data: dict[str, Any], defaults: dict[str, Any]) -> bool:
    """`approve:` of the task, else of its group, else of `defaults` (most specific wins)."""
    group = data.get("groups", {}).get(spec.get("group", ""), {})
    return bool(spec.get("approve", group.get("approve", defaults.get("approve", False))))


def _group_dep_tasks(tasks: dict[str, Any], groups: dict[str, Group]) -> dict[str, list[str]]:
    """For each group, the tasks of the groups it depends on (file order, no repeats).

    Computed once per group, not per task, so large groups stay linear to expand.
    """
    members: dict[str, list[str]] = {}
    for tid, task in tasks.items():
        if "group" in task:
            members.setdefault(task["group"], []).append(tid)
    return {
        gid: list(dict.fromkeys(t for dep in g.depends_on for t in members.get(dep, ())))
        for gid, g in groups.items()
    }


class _TaskBuilder:
    def __init__(
        self, source: Source, defaults: dict[str, Any], group_deps: Any, place: Placement
    ) -> None:
        self.source = source
        self.place = place
        self.defaults = defaults
        self.group_deps: dict[str, list[str]] = group_deps
        self.presets = _presets(source.data)
        self.sandboxes = SandboxResolver(source.data)

    def build(self, tid: str, spec: dict[str, Any]) -> Task:
        fallback = self.defaults
        explicit = tuple(spec.get("depends_on", ()))
        via_groups = self.group_deps.get(spec.get("group", ""), ())
        deps = tuple(dict.fromkeys((*explicit, *via_groups))) if via_groups else explicit
        agent = _agent_of(spec, self.defaults.get("agent"), self.presets)
        return Task(
            id=tid,
            title=spec.get("title", ""),
            group=spec.get("group"),
            role=spec.get("role"),
            agent=agent,
            prompt=spec.get("prompt"),
            prompt_file=spec.get("prompt_file"),
            run=spec.get("run"),
            inputs=tuple(spec.get("inputs", ())),
            outputs=tuple(spec.get("outputs", ())),
            output_keys=tuple(spec.get("output_keys", ())),
            when=_conditions(spec, self.source.data),
            trigger=spec.get("trigger", "all_success"),
            depends_on=explicit,
            deps=deps,
            validate=_validators(self.source, ("tasks", tid, "validate"), spec.get("validate", [])),
            touches=tuple(spec.get("touches", ())),
            priority=spec.get("priority", fallback.get("priority", "normal")),
            estimate_s=_seconds(spec.get("estimate")),
            timeout_s=_seconds(spec.get("timeout", fallback.get("timeout"))),
            idle_timeout_s=_seconds(spec.get("idle_timeout", fallback.get("idle_timeout"))),
            retries=int(spec.get("retries", fallback.get("retries", DEFAULT_RETRIES))),
            skills=tuple(spec.get("skills", ())),
            pool=self.place.pool_of(spec),
            env=dict(spec.get("env", {})),
            on_conflict=spec.get("on_conflict", fallback.get("on_conflict", "retry")),
            approve=_approve(spec, self.source.data, fallback),
            budget_usd=_usd(spec.get("budget")),
            sandbox=self.sandboxes.for_task(spec, agent),
            loc=_loc(self.source, ("tasks", tid)),
        )
