"""The in-memory workflow: what `spec` produces and everything else consumes.

Plain frozen dataclasses, no behaviour beyond small derived properties, so that
`plan`, `engine`, `report` and the tests can build them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Priority = Literal["high", "normal", "low"]
Strategy = Literal["waves", "eager"]
KeepPolicy = Literal["always", "on_failure", "never"]
OnConflict = Literal["retry", "fail"]
# When a task runs given how its dependencies ended (after Airflow's trigger rules).
Trigger = Literal["all_success", "all_done", "one_failed", "one_success"]
TRIGGERS: tuple[str, ...] = ("all_success", "all_done", "one_failed", "one_success")

PRIORITY_RANK: dict[str, int] = {"high": 0, "normal": 1, "low": 2}

# The built-in defaults, each written once: the model, the loader, the config layers and
# the scheduler all take them from here.
DEFAULT_CONCURRENCY = 4
DEFAULT_STRATEGY: Strategy = "waves"
DEFAULT_KEEP: KeepPolicy = "on_failure"
DEFAULT_RETRIES = 1
DEFAULT_RETRY_BACKOFF_S = 2.0  # base of the exponential backoff between attempts
DEFAULT_MIN_FREE_MEMORY_MB = 256.0  # below this, dispatch pauses with a system_alert
DEFAULT_MIN_FREE_DISK_MB = 500.0
PRESETS = ("claude-code", "codex", "aider", "gemini", "shell")
PoolExecutor = Literal["local", "ray"]
DEFAULT_POOL = "local"  # the pool of a task that names none: `concurrency` slots, no quota
DEFAULT_POLICY = "default"  # priority, then the longest remaining path (run/policies.py)
POLICIES = ("default", "fifo", "cost-aware")  # built in; config may name `module:Class`
DEFAULT_DEADLOCK_GRACE_S = 60.0  # nothing runs and nothing can start: fail after this


@dataclass(frozen=True)
class Loc:
    """Where a node is in the workflow file (1-based line and column)."""

    path: str
    line: int
    col: int


@dataclass(frozen=True)
class Validator:
    """One output gate.

    kind ``run``: ``run`` is a shell command that must exit 0.
    kind ``exists``: every path in ``paths`` must exist.
    kind ``contains``: file ``path`` must match regex ``pattern``.
    kind ``changes``: at least ``min_files`` files changed by the attempt.
    """

    kind: Literal["run", "exists", "contains", "changes"]
    run: str | None = None
    paths: tuple[str, ...] = ()
    path: str | None = None
    pattern: str | None = None
    min_files: int = 1
    timeout_s: float | None = None
    loc: Loc | None = None

    def describe(self) -> str:
        if self.kind == "run":
            return f"run: {self.run}"
        if self.kind == "exists":
            return "exists: " + ", ".join(self.paths)
        if self.kind == "contains":
            return f"contains: {self.path} =~ /{self.pattern}/"
        return f"changes: at least {self.min_files} file(s)"


@dataclass(frozen=True)
class SandboxSpec:
    """`sandbox:` of a task, as written (resolved at run time by run/sandboxing.py).

    ``network``: "full", "none", allowed ``host:port`` endpoints, or None for the preset's
    own default (its model endpoint; none for shell and custom commands). Paths are
    absolute or ``~/…`` (the agent's HOME), added to the built-in defaults."""

    network: Literal["full", "none"] | tuple[str, ...] | None = None
    read_write: tuple[str, ...] = ()
    read_only: tuple[str, ...] = ()
    read_deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pool:
    """Where a task runs and how many of a kind at once (`pools:`, in the file or config).

    ``slots``: tasks of the pool running at once (None: only the run's `concurrency` caps
    them); ``usd``: the pool's spend quota in a run (reaching it pauses the pool's
    dispatch); ``skills``: what its tasks may ask for; ``executor``: ``local`` or ``ray``;
    ``resources`` (Ray resources one task needs, e.g. ``{"GPU": 1}``) and ``labels`` (Ray
    node labels it must land on) are read by the ray executor."""

    name: str
    slots: int | None = None
    usd: float | None = None
    skills: tuple[str, ...] = ()
    executor: PoolExecutor = "local"
    resources: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    loc: Loc | None = None  # None: the built-in `local` pool, or one from a config file

    def cap(self, concurrency: int) -> int:
        """How many of its tasks may run at once under the run's ``concurrency``."""
        return concurrency if self.slots is None else min(self.slots, concurrency)


@dataclass(frozen=True)
class TmuxSpec:
    """How an interactive agent is driven in a tmux pane (`executor: tmux`)."""

    prompt: str = "Read {prompt_file} and carry out the task it describes."
    completion: Literal["prompt", "idle", "shell"] = "idle"
    prompt_pattern: str | None = None
    idle_s: float = 5.0
    send_delay_s: float = 0.5


@dataclass(frozen=True)
class AgentProfile:
    """How to start an agent. Exactly one of ``preset`` / ``command`` is set."""

    name: str
    preset: str | None = None
    command: tuple[str, ...] | None = None
    model: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # values may hold ${VAR}
    executor: str = "local"
    fallback: str | None = None
    pool: str | None = None  # the pool of its tasks that name none
    tmux: TmuxSpec = field(default_factory=TmuxSpec)
    loc: Loc | None = None

    @property
    def kind(self) -> str:
        """The preset name, or ``command`` for a custom command."""
        return self.preset or "command"


@dataclass(frozen=True)
class ReuseSpec:
    """``workspace.reuse``: ignored directories a pooled worktree keeps across attempts
    (``keep``) while the contents of the ``key`` files are unchanged; then `setup` is
    skipped."""

    keep: tuple[str, ...] = ()
    key: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkspaceSpec:
    copy: tuple[str, ...] = ()
    symlink: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    keep: KeepPolicy = DEFAULT_KEEP
    reuse: ReuseSpec = field(default_factory=ReuseSpec)


@dataclass(frozen=True)
class Group:
    id: str
    description: str = ""
    depends_on: tuple[str, ...] = ()
    validate: tuple[Validator, ...] = ()
    when: str | None = None  # a condition each of its tasks must meet (see Task.when)
    approve: bool = False  # its tasks wait for `conductor approve` before merging
    loc: Loc | None = None


@dataclass(frozen=True)
class Task:
    id: str
    title: str = ""
    group: str | None = None
    role: str | None = None
    agent: str = "claude"  # name of an AgentProfile in Workflow.agents
    prompt: str | None = None
    prompt_file: str | None = None  # relative to the workflow file's directory
    run: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    # the keys it writes to $CONDUCTOR_OUTPUT, when declared (then each must be written,
    # and only these may be referenced); empty: undeclared, any key may be referenced
    output_keys: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()  # as written in the file
    deps: tuple[str, ...] = ()  # expanded: explicit + every task of depended-on groups
    # `when:` conditions, all of which must hold when it becomes ready: its group's, then
    # its own (the text as written; spec/expr.py parses it)
    when: tuple[str, ...] = ()
    trigger: Trigger = "all_success"
    validate: tuple[Validator, ...] = ()
    touches: tuple[str, ...] = ()  # glob patterns; empty = unrestricted
    priority: Priority = "normal"
    estimate_s: float | None = None
    timeout_s: float | None = None
    idle_timeout_s: float | None = None
    retries: int = DEFAULT_RETRIES
    skills: tuple[str, ...] = ()
    # resolved at load: its own `pool:`, else its profile's, else `defaults`', else the
    # first pool offering its skills (`local` first); always a key of Workflow.pools
    pool: str = DEFAULT_POOL
    env: dict[str, str] = field(default_factory=dict)
    on_conflict: OnConflict = "retry"
    approve: bool = False  # resolved: its own, else its group's, else `defaults`
    budget_usd: float | None = None
    # resolved: its own `sandbox:`, else its agent profile's, else `defaults`; None: none
    sandbox: SandboxSpec | None = None
    loc: Loc | None = None
    # Fan-out (`matrix:` / `for_each:`): an expansion such as `T5[module=auth]` keeps the
    # id of the task it was expanded from and its values; None and {} for a plain task.
    template: str | None = None
    matrix: dict[str, str] = field(default_factory=dict)
    max_parallel: int | None = None  # expansions of `template` running at once


@dataclass(frozen=True)
class Workflow:
    path: Path  # the workflow file, absolute
    name: str
    tasks: dict[str, Task]  # in file order
    version: int = 1
    description: str = ""
    base: str = "HEAD"
    integration_branch: str = ""  # resolved: defaults to conductor/<name>
    log: str | None = None  # relative to the repository root
    strategy: Strategy = DEFAULT_STRATEGY
    concurrency: int = DEFAULT_CONCURRENCY
    agents: dict[str, AgentProfile] = field(default_factory=dict)
    workspace: WorkspaceSpec = field(default_factory=WorkspaceSpec)
    budget_usd: float | None = None
    hooks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    # env var names whose values are masked though no `env` references them (`secrets:`)
    secrets: tuple[str, ...] = ()
    # the file's pools over the config's, `local` always among them (spec/pools.py)
    pools: dict[str, Pool] = field(default_factory=dict)
    policy: str | None = None  # how ready tasks are ordered; None: DEFAULT_POLICY
    deadlock_grace_s: float | None = None  # None: DEFAULT_DEADLOCK_GRACE_S
    # `--repo PATH`: the repository a run of it acts on (None: the one holding the file)
    repo_dir: Path | None = None

    def pool(self, name: str) -> Pool:
        """The pool called ``name`` (a model built by hand may leave `local` out)."""
        return self.pools.get(name) or Pool(name)

    @property
    def source_dir(self) -> Path:
        return self.path.parent

    @property
    def repo_start(self) -> Path:
        """Where its repository is looked for: ``--repo``, else the file's directory."""
        return self.repo_dir or self.source_dir

    def group_tasks(self, group: str) -> list[str]:
        return [t.id for t in self.tasks.values() if t.group == group]
