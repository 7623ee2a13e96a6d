"""The semantic checks of a workflow file: what the JSON schema cannot say.

References (agents, groups, tasks, fallbacks), task bodies against their agent's kind,
prompt files, git-safe names and dependency cycles. They run even when the schema found
problems, so that one pass reports everything; they therefore read the data defensively.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from conductor.errors import Diagnostic
from conductor.spec.matrixchecks import FanoutChecker
from conductor.spec.names import component_problem, env_ref_problem, ref_problem
from conductor.spec.paths import path_problems
from conductor.spec.pools import Placement, all_pools, pool_problems
from conductor.spec.sandbox import sandbox_problems
from conductor.spec.suggest import did_you_mean
from conductor.spec.yamlsrc import JsonPath, Source, dotted

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
MAX_CYCLES = 10


# -- semantic checks ---------------------------------------------------------------------
# They run even when the schema found problems, so they read the data defensively.


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strs(value: Any) -> list[tuple[int, str]]:
    """(index, item) of the string items of a list; anything else is the schema's to report."""
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, str)]


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
        self.fanout = FanoutChecker(source, self.tasks, self.base_dir)
        # a dependency may name one expansion of a fan-out task: `T5[module=auth]`
        self.owner = {c.id: t for t, cs in self.fanout.combos.items() for c in cs}
        self.known = {**self.tasks, **self.owner} if self.owner else self.tasks

    def run(self) -> list[Diagnostic]:
        self.check_names()
        self.check_agents()
        for gid, group in self.groups.items():
            self.check_group(gid, _dict(group))
        for tid, task in self.tasks.items():
            self.check_task(tid, _dict(task))
        self.out.extend(path_problems(self.src))
        # pools: the file's, the config's and `local`
        place = Placement(self.src.data, all_pools(self.src, valid=False), self.agent_for)
        self.out.extend(pool_problems(self.src, place))
        self.out.extend(sandbox_problems(self.src))
        self.out.extend(self.fanout.run())
        self.out.extend(_cycle_problems(self.src, self.tasks, self.groups, self.owner))
        return self.out

    def agent_for(self, task: dict[str, Any]) -> str:
        return _agent_of(task, self.default_agent, self.presets)

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
            if tid in (dep, self.owner.get(dep)):
                self.at(path, f"task `{tid}` depends on itself")
            self.ref(path, dep, self.known, "task")
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
        if name.startswith("/"):  # `base_dir / "/etc/x"` is /etc/x: any file on the machine
            hint = f"prompt files are relative to the workflow file's directory ({self.base_dir})"
            self.at(("tasks", tid, "prompt_file"), f"prompt file `{name}` is an absolute path",
                    hint)  # fmt: skip
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


def _cycle_problems(
    src: Source, tasks: dict[str, Any], groups: dict[str, Any], owner: dict[str, str]
) -> list[Diagnostic]:
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
            dep = owner.get(dep, dep)  # one expansion: its fan-out task's node
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
