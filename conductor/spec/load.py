"""Workflow file → validated :class:`conductor.spec.model.Workflow`.

Three passes, all problems of all passes reported together: YAML (``yamlsrc``), the JSON
schema (``schema``), then the semantic checks here (references, cycles, task bodies, git
names). The model is built only from a file that passed all three.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from conductor.errors import Diagnostic, SpecError, UserError
from conductor.spec.durations import parse_duration
from conductor.spec.model import (
    AgentProfile,
    Group,
    Loc,
    Task,
    TmuxSpec,
    Validator,
    Workflow,
    WorkspaceSpec,
)
from conductor.spec.schema import MAX_PROBLEMS, schema_problems
from conductor.spec.suggest import did_you_mean
from conductor.spec.yamlsrc import JsonPath, Source, dotted, gc_paused, load_source

# Profiles that exist without being declared (a file may redefine them).
BUILTIN_AGENTS: dict[str, str] = {
    "claude": "claude-code",
    "claude-code": "claude-code",
    "codex": "codex",
    "aider": "aider",
    "gemini": "gemini",
    "shell": "shell",
}
BODIES = ("prompt", "prompt_file", "run")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # the schema's id pattern
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_REF_BAD_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
MAX_CYCLES = 10


def load_workflow(path: Path) -> Workflow:
    """Load, validate and build the workflow at ``path``.

    Raises UserError for an unreadable file and SpecError with every problem found.
    """
    with gc_paused():  # the model is as allocation-heavy as the parse
        source = load_source(path)
        problems = _all_problems(source, path)
        if problems:
            raise SpecError(problems)
        return _build(source, path)


def spec_problems(path: Path) -> list[Diagnostic]:
    """Every problem in the workflow at ``path`` (empty when it is valid)."""
    try:
        load_workflow(path)
    except SpecError as exc:
        return list(exc.diagnostics)
    except UserError as exc:
        return [Diagnostic(str(exc), str(path), hint=exc.hint)]
    return []


def resolve_env_refs(value: str) -> list[str]:
    """Names of the ``${VAR}`` references in ``value``, in order, without repeats."""
    return list(dict.fromkeys(_ENV_REF.findall(value)))


def env_ref_problem(value: str) -> str | None:
    """Why ``value``'s ``${...}`` syntax is malformed, or None when it is fine."""
    start = value.find("${")
    while start != -1:
        match = _ENV_REF.match(value, start)
        if match is None:
            end = value.find("}", start)
            shown = value[start : end + 1] if end != -1 else value[start:]
            return f"malformed variable reference `{shown}`: use ${{NAME}}"
        start = value.find("${", match.end())
    return None


def _all_problems(source: Source, path: Path) -> list[Diagnostic]:
    found = dict.fromkeys(schema_problems(source) + _Checker(source, path).run())
    return sorted(found, key=lambda d: (d.line or 0, d.col or 0))[:MAX_PROBLEMS]


# -- semantic checks ---------------------------------------------------------------------
# They run even when the schema found problems, so they read the data defensively.


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strs(value: Any) -> list[tuple[int, str]]:
    """(index, item) of the string items of a list; anything else is the schema's to report."""
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, str)]


def component_problem(name: str) -> str | None:
    """Why ``name`` cannot be one component of a git branch or directory, or None."""
    if ".." in name:
        return "contains `..`"
    if name.endswith(".lock"):
        return "ends with `.lock`"
    if name.endswith("."):
        return "ends with `.`"
    if "@{" in name:
        return "contains `@{`"
    if name.startswith(("-", ".")):
        return f"starts with `{name[0]}`"
    return None


def ref_problem(ref: str) -> str | None:
    """Why ``ref`` is not a valid git branch name (after `git check-ref-format`), or None."""
    bad = _REF_BAD_CHARS.search(ref)
    if bad:
        return "contains a space" if bad.group() == " " else f"contains `{bad.group()!s}`"
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        return "has an empty path component"
    if ref == "@":
        return "is `@`"
    for part in ref.split("/"):
        why = component_problem(part)
        if why:
            return why
    return None


def _presets(data: dict[str, Any]) -> dict[str, str]:
    """Agent name -> preset (``command`` for a custom command), built-ins included."""
    presets = dict(BUILTIN_AGENTS)
    for name, agent in _dict(data.get("agents")).items():
        preset = _dict(agent).get("preset")
        presets[name] = preset if isinstance(preset, str) else "command"
    return presets


def _agent_of(task: dict[str, Any], default: str | None, presets: dict[str, str]) -> str:
    """The profile a task runs with: its own, else the default, else by its body.

    A `run` task without `agent:` takes the default only when that is a shell profile:
    `defaults.agent: claude` must not make every shell task of the file invalid.
    """
    explicit = task.get("agent")
    if isinstance(explicit, str):
        return explicit
    if "run" in task:
        return default if default and presets.get(default) == "shell" else "shell"
    return default or "claude"


class _Checker:
    def __init__(self, source: Source, path: Path) -> None:
        self.src = source
        self.base_dir = path.resolve().parent
        data = source.data
        self.tasks = _dict(data.get("tasks"))
        self.groups = _dict(data.get("groups"))
        self.presets = _presets(data)
        agent = _dict(data.get("defaults")).get("agent")
        self.default_agent = agent if isinstance(agent, str) else None
        self.out: list[Diagnostic] = []

    def run(self) -> list[Diagnostic]:
        self.check_names()
        self.check_agents()
        for gid, group in self.groups.items():
            self.check_group(gid, _dict(group))
        for tid, task in self.tasks.items():
            self.check_task(tid, _dict(task))
        self.out.extend(_cycle_problems(self.src, self.tasks, self.groups))
        return self.out

    def at(self, path: JsonPath, message: str, hint: str | None = None, key: bool = False) -> None:
        text = f"{dotted(path)}: {message}"
        make = self.src.key_diag if key else self.src.diag
        self.out.append(make(path, text, hint))

    def ref(self, path: JsonPath, name: Any, known: Any, what: str) -> None:
        if isinstance(name, str) and name not in known:
            self.at(path, f"unknown {what} `{name}`", did_you_mean(name, known))

    def check_names(self) -> None:
        data = self.src.data
        name = data.get("name")
        if isinstance(name, str) and (why := component_problem(name)) is not None:
            self.at(("name",), f"{name!r} cannot be used in a branch name: it {why}")
        branch = data.get("integration_branch")
        if isinstance(branch, str) and (why := ref_problem(branch)) is not None:
            self.at(("integration_branch",), f"{branch!r} is not a valid branch name: it {why}")
        for section, ids in (("tasks", self.tasks), ("groups", self.groups)):
            for ident in ids:
                why = component_problem(ident) if _ID.match(ident) else None
                if why is not None:
                    message = f"id `{ident}` cannot be used in a branch name: it {why}"
                    self.at((section, ident), message, key=True)

    def check_agents(self) -> None:
        agents = _dict(self.src.data.get("agents"))
        for name, agent in agents.items():
            agent = _dict(agent)
            fallback = agent.get("fallback")
            path = ("agents", name, "fallback")
            if fallback == name:
                self.at(path, f"agent `{name}` cannot fall back to itself")
            self.ref(path, fallback, self.presets, "agent")
            self.check_env(("agents", name, "env"), agent.get("env"))
        self.check_fallback_loops(agents)
        self.ref(("defaults", "agent"), self.default_agent, self.presets, "agent")

    def check_fallback_loops(self, agents: dict[str, Any]) -> None:
        reported: set[str] = set()
        for start in agents:
            chain, name = [start], _dict(agents[start]).get("fallback")
            while isinstance(name, str) and name in agents and name not in chain:
                chain.append(name)
                name = _dict(agents[name]).get("fallback")
            if name == start and len(chain) > 1 and not reported.intersection(chain):
                reported.update(chain)
                loop = " -> ".join([*chain, start])
                self.at(("agents", start, "fallback"), f"agent fallbacks form a loop: {loop}")

    def check_env(self, path: JsonPath, env: Any) -> None:
        for key, value in _dict(env).items():
            if isinstance(value, str) and (why := env_ref_problem(value)) is not None:
                self.at((*path, key), why, "write ${NAME}, NAME being letters, digits and _")

    def check_validators(self, path: JsonPath, validators: Any) -> None:
        for i, item in enumerate(validators if isinstance(validators, list) else []):
            pattern = _dict(_dict(item).get("contains")).get("pattern")
            if isinstance(pattern, str):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    message = f"invalid regular expression: {exc}"
                    self.at((*path, i, "contains", "pattern"), message)

    def check_group(self, gid: str, group: dict[str, Any]) -> None:
        for i, dep in _strs(group.get("depends_on")):
            path = ("groups", gid, "depends_on", i)
            if dep == gid:
                self.at(path, f"group `{gid}` depends on itself")
            self.ref(path, dep, self.groups, "group")
        self.check_validators(("groups", gid, "validate"), group.get("validate"))

    def check_task(self, tid: str, task: dict[str, Any]) -> None:
        base: JsonPath = ("tasks", tid)
        self.ref((*base, "group"), task.get("group"), self.groups, "group")
        self.ref((*base, "agent"), task.get("agent"), self.presets, "agent")
        for i, dep in _strs(task.get("depends_on")):
            path = (*base, "depends_on", i)
            if dep == tid:
                self.at(path, f"task `{tid}` depends on itself")
            self.ref(path, dep, self.tasks, "task")
        self.check_body(tid, task)
        self.check_env((*base, "env"), task.get("env"))
        self.check_validators((*base, "validate"), task.get("validate"))

    def check_body(self, tid: str, task: dict[str, Any]) -> None:
        base: JsonPath = ("tasks", tid)
        bodies = [b for b in BODIES if b in task]
        if not bodies:
            hint = "`run:` for a shell command, `prompt:` or `prompt_file:` for an agent"
            self.at(base, "needs one of `prompt`, `prompt_file` or `run`", hint, key=True)
            return
        if len(bodies) > 1:
            together = " and ".join(f"`{b}`" for b in bodies)
            self.at((*base, bodies[1]), f"{together} cannot be used together", key=True)
            return
        body, agent = bodies[0], _agent_of(task, self.default_agent, self.presets)
        kind = self.presets.get(agent)
        if kind is None:
            return  # unknown agent: already reported
        if body == "run" and kind != "shell":
            what = "a custom command" if kind == "command" else f"a {kind}"
            hint = "use `agent: shell` (or drop `agent:`), or give the agent a `prompt`"
            self.at((*base, "run"), f"`run` needs a shell agent; `{agent}` is {what} agent",
                    hint, key=True)  # fmt: skip
        elif body != "run" and kind == "shell":
            hint = "a shell task takes `run:`; name an agent (e.g. `agent: claude`) for a prompt"
            self.at((*base, body), f"agent `{agent}` runs shell commands, not `{body}`",
                    hint, key=True)  # fmt: skip
        elif body == "prompt_file":
            self.check_prompt_file(tid, task.get("prompt_file"))

    def check_prompt_file(self, tid: str, name: Any) -> None:
        if not isinstance(name, str) or not name:
            return
        target = self.base_dir / name
        if not target.is_file():
            where = "is not a file" if target.exists() else "does not exist"
            message = f"prompt file `{name}` {where}"
            hint = f"prompt files are relative to the workflow file's directory ({self.base_dir})"
            self.at(("tasks", tid, "prompt_file"), message, hint)


# -- cycles ------------------------------------------------------------------------------
# Group dependencies are modelled with one node per group ("every task of G") instead of
# task-to-task edges, which would be quadratic for big groups. A cheap stdlib check runs
# first; networkx is imported only to spell out the cycles of a file that has some.

Node = Any  # a task id (str) or ("group", id)


class _Graph:
    def __init__(self) -> None:
        self.succ: dict[Node, list[Node]] = {}
        self.origin: dict[tuple[Node, Node], JsonPath] = {}  # where each edge is written

    def add(self, node: Node, dep: Node, origin: JsonPath) -> None:
        self.succ.setdefault(node, []).append(dep)
        self.succ.setdefault(dep, [])
        self.origin.setdefault((node, dep), origin)

    def cycles(self) -> list[list[Node]]:
        from graphlib import CycleError, TopologicalSorter

        try:
            TopologicalSorter(self.succ).prepare()
            return []
        except CycleError:
            pass
        import networkx as nx

        graph: nx.DiGraph[Node] = nx.DiGraph()
        graph.add_edges_from((u, v) for u, vs in self.succ.items() for v in vs)
        found: list[list[Node]] = []
        for component in nx.strongly_connected_components(graph):
            if len(component) > 1 and len(found) < MAX_CYCLES:
                found.append([u for u, _v in nx.find_cycle(graph.subgraph(component))])
        return found


def _cycle_problems(src: Source, tasks: dict[str, Any], groups: dict[str, Any]) -> list[Diagnostic]:
    group_order = {name: i for i, name in enumerate(groups)}
    group_graph = _Graph()
    for name, group in groups.items():
        for j, dep in _strs(_dict(group).get("depends_on")):
            if dep in groups and dep != name:
                group_graph.add(name, dep, ("groups", name, "depends_on", j))
    problems = [
        _cycle_diag(src, group_graph, c, group_order, "group cycle") for c in group_graph.cycles()
    ]
    if problems:  # the task graph repeats them; the group-level message is the clearer one
        return problems
    graph = _Graph()
    for tid, raw in tasks.items():
        task = _dict(raw)
        for i, dep in _strs(task.get("depends_on")):
            if dep in tasks and dep != tid:
                graph.add(tid, dep, ("tasks", tid, "depends_on", i))
        gid = task.get("group")
        if isinstance(gid, str) and gid in groups:
            graph.add(("group", gid), tid, ("tasks", tid, "group"))
            for j, dep in _strs(_dict(groups[gid]).get("depends_on")):
                if dep in groups and dep != gid:
                    graph.add(tid, ("group", dep), ("groups", gid, "depends_on", j))
    order = {tid: i for i, tid in enumerate(tasks)}
    return [_cycle_diag(src, graph, c, order, "dependency cycle") for c in graph.cycles()]


def _cycle_diag(
    src: Source, graph: _Graph, cycle: list[Node], order: dict[str, int], what: str
) -> Diagnostic:
    """``T3 -> T7 -> T3``, starting at the earliest task in the file, located at its edge."""
    tasks = [n for n in cycle if isinstance(n, str)]
    start = cycle.index(min(tasks, key=order.__getitem__))
    cycle = cycle[start:] + cycle[:start]
    shown = [n for n in cycle if isinstance(n, str)]
    text = " -> ".join([*shown, shown[0]])
    edges = list(zip(cycle, cycle[1:] + cycle[:1], strict=True))
    via = [graph.origin[e] for e in edges if not isinstance(e[1], str)]
    hint = None
    if via:
        groups = src.data["groups"]
        links = [f"group `{o[1]}` depends on `{groups[o[1]]['depends_on'][o[3]]}`" for o in via]
        hint = "through group dependencies: " + "; ".join(links)
    origin = graph.origin[edges[0]]
    return src.diag(origin, f"{dotted(origin)}: {what}: {text}", hint)


# -- building the model ------------------------------------------------------------------


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
    builder = _TaskBuilder(source, defaults, group_deps)
    return Workflow(
        path=path.resolve(),
        name=data["name"],
        tasks={tid: builder.build(tid, t) for tid, t in data["tasks"].items()},
        version=int(data["version"]),
        description=data.get("description", ""),
        base=data.get("base", "HEAD"),
        integration_branch=data.get("integration_branch") or f"conductor/{data['name']}",
        log=data.get("log"),
        strategy=data.get("strategy", "waves"),
        concurrency=int(data.get("concurrency", 4)),
        agents=_agents(source),
        workspace=WorkspaceSpec(
            copy=tuple(workspace.get("copy", ())),
            symlink=tuple(workspace.get("symlink", ())),
            setup=tuple(workspace.get("setup", ())),
            keep=workspace.get("keep", "on_failure"),
        ),
        budget_usd=_usd(data.get("budget")),
        hooks={event: tuple(argv) for event, argv in data.get("on", {}).items()},
        groups=groups,
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
        loc=_loc(source, ("groups", gid)),
    )


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
    def __init__(self, source: Source, defaults: dict[str, Any], group_deps: Any) -> None:
        self.source = source
        self.defaults = defaults
        self.group_deps: dict[str, list[str]] = group_deps
        self.presets = _presets(source.data)

    def build(self, tid: str, spec: dict[str, Any]) -> Task:
        fallback = self.defaults
        explicit = tuple(spec.get("depends_on", ()))
        via_groups = self.group_deps.get(spec.get("group", ""), ())
        deps = tuple(dict.fromkeys((*explicit, *via_groups))) if via_groups else explicit
        return Task(
            id=tid,
            title=spec.get("title", ""),
            group=spec.get("group"),
            role=spec.get("role"),
            agent=_agent_of(spec, self.defaults.get("agent"), self.presets),
            prompt=spec.get("prompt"),
            prompt_file=spec.get("prompt_file"),
            run=spec.get("run"),
            inputs=tuple(spec.get("inputs", ())),
            outputs=tuple(spec.get("outputs", ())),
            depends_on=explicit,
            deps=deps,
            validate=_validators(self.source, ("tasks", tid, "validate"), spec.get("validate", [])),
            touches=tuple(spec.get("touches", ())),
            priority=spec.get("priority", fallback.get("priority", "normal")),
            estimate_s=_seconds(spec.get("estimate")),
            timeout_s=_seconds(spec.get("timeout", fallback.get("timeout"))),
            idle_timeout_s=_seconds(spec.get("idle_timeout", fallback.get("idle_timeout"))),
            retries=int(spec.get("retries", fallback.get("retries", 1))),
            skills=tuple(spec.get("skills", ())),
            env=dict(spec.get("env", {})),
            on_conflict=spec.get("on_conflict", fallback.get("on_conflict", "retry")),
            budget_usd=_usd(spec.get("budget")),
            loc=_loc(self.source, ("tasks", tid)),
        )
