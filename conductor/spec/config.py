"""Defaults a user sets once: user config, repository config, then workflow and flags.

Precedence, lowest first: built-in < ``NO_COLOR`` < user config
(``$XDG_CONFIG_HOME/conductor/config.toml``) < repository config (``[tool.conductor]`` in
pyproject.toml, then ``conductor.toml``) < ``CONDUCTOR_*`` variables (``ENV_VARS``) <
workflow file < command-line flags. ``NO_COLOR`` sits low on purpose: no-color.org asks
that a user's own configuration may override it. Every value remembers where it came
from, for ``conductor config``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from conductor.errors import UserError
from conductor.spec.model import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DEADLOCK_GRACE_S,
    DEFAULT_KEEP,
    DEFAULT_MIN_FREE_DISK_MB,
    DEFAULT_MIN_FREE_MEMORY_MB,
    DEFAULT_POLICY,
    DEFAULT_RETRY_BACKOFF_S,
    DEFAULT_STRATEGY,
    POLICIES,
)
from conductor.spec.suggest import did_you_mean

if TYPE_CHECKING:
    from conductor.spec.model import KeepPolicy, Strategy, Workflow

BUILT_IN = "built-in"


def _choice(*options: str) -> Callable[[Any], bool]:
    return lambda v: v in options


def _int_min(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def _policy_name(v: Any) -> bool:
    return isinstance(v, str) and (v in POLICIES or re.fullmatch(r"[\w.]+:[\w.]+", v) is not None)


@dataclass(frozen=True)
class Key:
    default: Any
    check: Callable[[Any], bool]
    expect: str  # what a valid value looks like, for the error message


# Dotted names for nested tables; the defaults match what the engine does without config.
KEYS: dict[str, Key] = {
    "concurrency": Key(DEFAULT_CONCURRENCY, _int_min(1), "an integer >= 1"),
    "strategy": Key(DEFAULT_STRATEGY, _choice("waves", "eager"), "waves or eager"),
    "color": Key("auto", _choice("auto", "always", "never"), "auto, always or never"),
    "emoji": Key(True, lambda v: isinstance(v, bool), "true or false"),
    "verbosity": Key("normal", _choice("quiet", "normal", "verbose"), "quiet, normal or verbose"),
    "log_dir": Key(".conductor/runs", lambda v: isinstance(v, str) and v != "", "a path"),
    "keep": Key(
        DEFAULT_KEEP, _choice("always", "on_failure", "never"), "always, on_failure or never"
    ),
    "alerts.min_free_memory_mb": Key(DEFAULT_MIN_FREE_MEMORY_MB, _number, "a number of MB >= 0"),
    "alerts.min_free_disk_mb": Key(DEFAULT_MIN_FREE_DISK_MB, _number, "a number of MB >= 0"),
    "retry_backoff": Key(DEFAULT_RETRY_BACKOFF_S, _number, "a number of seconds >= 0"),
    # which ready task goes first: a built-in policy or `module:Class` (run/policies.py)
    "policy": Key(DEFAULT_POLICY, _policy_name, "default, fifo, cost-aware or module:Class"),
    "deadlock_grace": Key(DEFAULT_DEADLOCK_GRACE_S, _number, "a number of seconds >= 0"),
    # `conductor serve --host` beyond loopback asks for it on every request ("": a new one)
    "serve.token": Key("", lambda v: isinstance(v, str), "a string"),
    # the `ray` executor: the cluster to join (`auto`: this machine's, or $RAY_ADDRESS)
    "ray.address": Key("auto", lambda v: isinstance(v, str) and v != "", "a Ray address or auto"),
    # where Ray workers keep their repository cache ("": $CONDUCTOR_WORKER_DIR, ~/.cache)
    "ray.worker_dir": Key("", lambda v: isinstance(v, str), "a path on the worker nodes"),
}
TABLES = {"alerts", "serve", "ray"}
# Settings a variable may set for one invocation, like a flag (tests use the backoff one).
ENV_VARS = {
    "retry_backoff": "CONDUCTOR_RETRY_BACKOFF",
    "deadlock_grace": "CONDUCTOR_DEADLOCK_GRACE",
    "alerts.min_free_memory_mb": "CONDUCTOR_MIN_FREE_MEMORY_MB",
    "alerts.min_free_disk_mb": "CONDUCTOR_MIN_FREE_DISK_MB",
}

# The flag that sets a key, for the `sources` column.
FLAGS = {"concurrency": "--concurrency", "strategy": "--strategy", "color": "--color"}


@dataclass(frozen=True)
class Config:
    values: dict[str, Any]
    sources: dict[str, str]
    files: tuple[str, ...] = field(default=())  # config files that were read

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def concurrency(self) -> int:
        return int(self.values["concurrency"])

    @property
    def strategy(self) -> str:
        return str(self.values["strategy"])

    @property
    def color(self) -> str:
        return str(self.values["color"])

    @property
    def emoji(self) -> bool:
        return bool(self.values["emoji"])

    @property
    def verbosity(self) -> str:
        return str(self.values["verbosity"])

    @property
    def log_dir(self) -> str:
        return str(self.values["log_dir"])

    @property
    def keep(self) -> str:
        return str(self.values["keep"])

    @property
    def min_free_memory_mb(self) -> float:
        return float(self.values["alerts.min_free_memory_mb"])

    @property
    def min_free_disk_mb(self) -> float:
        return float(self.values["alerts.min_free_disk_mb"])

    @property
    def retry_backoff(self) -> float:
        return float(self.values["retry_backoff"])

    def layered(self, values: Mapping[str, Any], source: str | Callable[[str], str]) -> Config:
        """A copy with ``values`` (already checked) on top, labelled ``source``."""
        new_values, new_sources = dict(self.values), dict(self.sources)
        for key, value in values.items():
            if value is None:
                continue
            new_values[key] = value
            new_sources[key] = source if isinstance(source, str) else source(key)
        return Config(new_values, new_sources, self.files)


def builtin() -> Config:
    return Config({k: spec.default for k, spec in KEYS.items()}, dict.fromkeys(KEYS, BUILT_IN))


# -- reading files --------------------------------------------------------------------


def _parse_toml(path: Path) -> dict[str, Any]:
    try:
        toml: Any = importlib.import_module("tomllib")
    except ImportError:  # Python 3.10: the tomli backport is the same parser
        try:
            toml = importlib.import_module("tomli")
        except ImportError:
            raise UserError(
                f"{path}: reading TOML config needs Python 3.11+ or the `tomli` package",
                hint="pip install tomli",
            ) from None
    try:
        data: dict[str, Any] = toml.loads(path.read_text(encoding="utf-8"))
    except toml.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    return data


def _line_of(text: str, key: str, section: str | None) -> int | None:
    """Where ``key`` is written, searched after the ``[section]`` header when there is one
    (tomllib reports no positions, so the text is searched instead)."""
    lines = text.splitlines()
    start = 0
    if section is not None:
        head = re.compile(r"^\s*\[\s*" + re.escape(section).replace(r"\.", r"\s*\.\s*"))
        start = next((i for i, line in enumerate(lines) if head.match(line)), 0)
    word = re.compile(r"(^|[\s{,.\[\"'])" + re.escape(key) + r"[\"']?\s*[=.\]]")
    for i in range(start, len(lines)):
        if word.search(lines[i]):
            return i + 1
    return None


def _flatten(table: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key == "pools":  # named tables of their own: spec/poolconfig.py reads them
            continue
        if key in TABLES and isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _checked(table: Mapping[str, Any], path: Path, section: str | None) -> dict[str, Any]:
    """The table's values by dotted key; an unknown key or a bad value is a UserError
    located at ``path:line``."""
    text = path.read_text(encoding="utf-8", errors="replace")
    for key, value in _flatten(table).items():
        leaf = key.rsplit(".", 1)[-1]
        line = _line_of(text, leaf, section)
        where = f"{path}:{line}" if line else str(path)
        if key not in KEYS:
            hint = did_you_mean(key, KEYS) or "known keys: " + ", ".join(KEYS)
            raise UserError(f"{where}: unknown config key `{key}`", hint=hint)
        if not KEYS[key].check(value):
            raise UserError(f"{where}: `{key}` must be {KEYS[key].expect}, not {value!r}")
    return _flatten(table)


def _repo_layers(root: Path) -> list[tuple[dict[str, Any], str, str]]:
    """(values, source label, file) for the repository's config files, lowest first."""
    out: list[tuple[dict[str, Any], str, str]] = []
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        tool = _parse_toml(pyproject).get("tool", {})
        table = tool.get("conductor") if isinstance(tool, dict) else None
        if isinstance(table, dict):
            values = _checked(table, pyproject, "tool.conductor")
            out.append((values, "pyproject.toml [tool.conductor]", str(pyproject)))
    standalone = root / "conductor.toml"
    if standalone.is_file():
        values = _checked(_parse_toml(standalone), standalone, None)
        out.append((values, "conductor.toml", str(standalone)))
    return out


def user_config_path(environ: Mapping[str, str]) -> Path:
    home = Path(environ.get("HOME") or Path.home())
    base = environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(base) / "conductor" / "config.toml"


def _pretty(path: Path, environ: Mapping[str, str]) -> str:
    home = environ.get("HOME")
    if home and path.is_relative_to(home):
        return "~/" + str(path.relative_to(home))
    return str(path)


def load_config(repo_root: Path | None, environ: Mapping[str, str]) -> Config:
    """Built-in defaults overlaid with NO_COLOR, the user config, the repository config and
    CONDUCTOR_RETRY_BACKOFF. Raises UserError for unknown keys and bad values."""
    cfg = builtin()
    if environ.get("NO_COLOR"):
        cfg = cfg.layered({"color": "never"}, "NO_COLOR")
    files: list[str] = []
    user = user_config_path(environ)
    if user.is_file():
        cfg = cfg.layered(_checked(_parse_toml(user), user, None), _pretty(user, environ))
        files.append(str(user))
    for values, label, path in _repo_layers(repo_root) if repo_root is not None else []:
        cfg = cfg.layered(values, label)
        files.append(path)
    for key, var in ENV_VARS.items():
        if environ.get(var):
            cfg = cfg.layered({key: _env_number(var, environ[var])}, "$" + var)
    return Config(cfg.values, cfg.sources, tuple(files))


def _env_number(var: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise UserError(f"{var} must be a number >= 0, not {text!r}")
    return value


def effective(
    config: Config, workflow_values: Mapping[str, Any], cli_values: Mapping[str, Any]
) -> Config:
    """``config`` with the workflow file's settings, then the command-line flags, on top.
    ``None`` values mean "not given" and are skipped; keys must be known."""
    for key in (*workflow_values, *cli_values):
        if key not in KEYS:
            raise ValueError(f"unknown config key {key!r}")  # a caller bug, not user input
    cfg = config.layered(workflow_values, "workflow")
    return cfg.layered(cli_values, lambda key: _flag(key, cli_values[key]))


def _flag(key: str, value: Any) -> str:
    if key == "verbosity":
        return {"quiet": "--quiet", "verbose": "--verbose"}.get(str(value), "--verbosity")
    if key == "color" and value == "never":
        return "--no-color"
    return FLAGS.get(key, "--" + key.replace("_", "-").replace(".", "-"))


_TOP_KEY = {key: re.compile(rf"^{key}\s*:", re.MULTILINE) for key in ("concurrency", "strategy")}
_KEEP = re.compile(r"^\s+keep\s*:|[{,]\s*keep\s*:", re.MULTILINE)


def workflow_values(wf: Workflow) -> dict[str, Any]:
    """The config keys the workflow file itself sets (concurrency, strategy, workspace.keep).

    The model fills defaults in, so a value counts as set when it differs from the model's
    default or the key is written in the file (a cheap text search rather than a re-parse).
    """
    try:
        text = wf.path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    out: dict[str, Any] = {}
    if wf.concurrency != DEFAULT_CONCURRENCY or _TOP_KEY["concurrency"].search(text):
        out["concurrency"] = wf.concurrency
    if wf.strategy != DEFAULT_STRATEGY or _TOP_KEY["strategy"].search(text):
        out["strategy"] = wf.strategy
    if wf.workspace.keep != DEFAULT_KEEP or _KEEP.search(text):
        out["keep"] = wf.workspace.keep
    if wf.policy is not None:  # the model keeps None for "not written"
        out["policy"] = wf.policy
    if wf.deadlock_grace_s is not None:
        out["deadlock_grace"] = wf.deadlock_grace_s
    return out


@dataclass(frozen=True)
class RunSettings:
    """The configured values the engine needs while a run goes, handed over as a value."""

    retry_backoff_s: float = DEFAULT_RETRY_BACKOFF_S
    min_free_memory_mb: float = DEFAULT_MIN_FREE_MEMORY_MB
    min_free_disk_mb: float = DEFAULT_MIN_FREE_DISK_MB
    ray_address: str = "auto"  # the cluster `executor: ray` pools run on
    ray_worker_dir: str = ""  # on the worker nodes; "": their own default


def run_settings(config: Config) -> RunSettings:
    return RunSettings(
        retry_backoff_s=float(config.values["retry_backoff"]),
        min_free_memory_mb=float(config.values["alerts.min_free_memory_mb"]),
        min_free_disk_mb=float(config.values["alerts.min_free_disk_mb"]),
        ray_address=str(config.values["ray.address"]),
        ray_worker_dir=str(config.values["ray.worker_dir"]),
    )


def find_repo_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` holding ``.git`` (no git process)."""
    here = start.resolve()
    for d in (here, *here.parents):
        if (d / ".git").exists():
            return d
    return None


def configured(
    wf: Workflow, flags: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[Workflow, Config]:
    """The workflow with the effective settings applied (flag > file > repo > user)."""
    import dataclasses

    cfg = effective(load_config(find_repo_root(wf.repo_start), environ), workflow_values(wf),
                    flags)  # fmt: skip
    if wf.log is None and cfg.sources["log_dir"] != BUILT_IN:  # one log per run in log_dir
        wf = dataclasses.replace(wf, log=f"{cfg.log_dir.rstrip('/')}/{{run}}/EXECUTION_LOG.md")
    workspace = dataclasses.replace(wf.workspace, keep=cast("KeepPolicy", cfg.keep))
    wf = dataclasses.replace(wf, workspace=workspace, concurrency=cfg.concurrency,
                             strategy=cast("Strategy", cfg.strategy), policy=cfg["policy"],
                             deadlock_grace_s=float(cfg["deadlock_grace"]))  # fmt: skip
    return wf, cfg
