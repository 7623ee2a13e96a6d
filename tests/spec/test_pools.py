"""Pools in the workflow file and in config: the model, each task's pool, the checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor.errors import SpecError, UserError
from conductor.spec.config import configured, load_config
from conductor.spec.load import load_workflow
from conductor.spec.model import DEFAULT_DEADLOCK_GRACE_S, Pool, Workflow
from tests.testing.paths import GOOD
from tests.testing.repos import write

WF = """
version: 1
name: p
{extra}
tasks:
{tasks}
"""


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user config is tmp_path/home/.config/conductor/config.toml."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.delenv("CONDUCTOR_DEADLOCK_GRACE", raising=False)


def load(tmp_path: Path, extra: str, tasks: str) -> Workflow:
    path = write(tmp_path / "repo" / "wf.yaml", WF.format(extra=extra, tasks=tasks))
    (tmp_path / "repo" / ".git").mkdir(exist_ok=True)  # the config's repository root
    return load_workflow(path)


def test_full_example_pools() -> None:
    wf = load_workflow(GOOD / "full.yaml")
    assert list(wf.pools) == ["local", "db-seats", "gpu"]
    assert wf.pools["local"] == Pool("local")
    seats, gpu = wf.pools["db-seats"], wf.pools["gpu"]
    assert (seats.slots, seats.usd, seats.skills) == (2, 20.0, ("database", "python"))
    assert (gpu.executor, gpu.resources, gpu.labels) == ("ray", {"GPU": 1.0}, {"zone": "eu"})
    assert gpu.loc is not None and gpu.loc.line > 100
    assert wf.tasks["T1"].pool == "db-seats" and wf.tasks["T2"].pool == "local"
    assert (wf.policy, wf.deadlock_grace_s) == ("cost-aware", 120.0)


def test_a_task_lands_in_the_pool_named_most_specifically(tmp_path: Path) -> None:
    extra = """
defaults: {pool: b}
agents:
  fast: {preset: codex, pool: a}
pools:
  a: {slots: 1}
  b: {slots: 2}
  c: {slots: 3}
"""
    tasks = """
  T1: {prompt: x}
  T2: {prompt: x, agent: fast}
  T3: {prompt: x, agent: fast, pool: c}
"""
    wf = load(tmp_path, extra, tasks)
    assert {t.id: t.pool for t in wf.tasks.values()} == {"T1": "b", "T2": "a", "T3": "c"}
    assert wf.agents["fast"].pool == "a"


def test_a_task_naming_no_pool_lands_in_the_first_offering_its_skills(tmp_path: Path) -> None:
    extra = """
pools:
  py: {skills: [python]}
  db: {skills: [python, database]}
  local: {slots: 2, skills: [shell]}
"""
    tasks = """
  T1: {run: "true"}
  T2: {run: "true", skills: [python]}
  T3: {run: "true", skills: [database]}
  T4: {run: "true", skills: [shell]}
"""
    wf = load(tmp_path, extra, tasks)
    pools = {t.id: t.pool for t in wf.tasks.values()}
    # `local` is asked first even when the file redefines it after the others
    assert pools == {"T1": "local", "T2": "py", "T3": "db", "T4": "local"}
    assert wf.pools["local"].slots == 2


def test_pools_of_the_config_are_known_and_the_file_wins(tmp_path: Path) -> None:
    write(tmp_path / "home" / ".config/conductor/config.toml",
          '[pools.gpu]\nslots = 2\nexecutor = "ray"\nskills = ["cuda"]\n'
          '[pools.gpu.resources]\nGPU = 1\n\n[pools.seats]\nslots = 9\n')  # fmt: skip
    write(tmp_path / "repo" / "conductor.toml", "[pools.seats]\nslots = 4\nusd = 10\n")
    tasks = """
  T1: {run: "true", skills: [cuda]}
  T2: {run: "true", pool: seats}
"""
    wf = load(tmp_path, "pools: {mine: {slots: 1}}", tasks)
    pools = wf.pools
    assert list(pools) == ["local", "gpu", "seats", "mine"]
    assert pools["gpu"].resources == {"GPU": 1.0} and pools["gpu"].executor == "ray"
    assert (pools["seats"].slots, pools["seats"].usd) == (4, 10.0)  # the repository's
    assert wf.tasks["T1"].pool == "gpu"
    wf2 = load(tmp_path, "pools: {seats: {slots: 1}}", tasks)
    assert wf2.pools["seats"].slots == 1


def test_a_bad_config_pool_is_located(tmp_path: Path) -> None:
    write(tmp_path / "home" / ".config/conductor/config.toml",
          'concurrency = 2\n\n[pools.gpu]\nslots = -1\n')  # fmt: skip
    with pytest.raises(UserError) as err:
        load(tmp_path, "", '  T1: {run: "true"}')
    assert "config.toml:3: pools.gpu.slots: -1 is less than the minimum of 0" in str(err.value)


def test_unknown_pools_and_uncovered_skills_are_all_reported(tmp_path: Path) -> None:
    extra = "defaults: {pool: nope}\npools: {db: {skills: [database]}}"
    tasks = """
  T1: {run: "true", pool: dbb}
  T2: {run: "true", pool: db, skills: [database, gpu]}
"""
    with pytest.raises(SpecError) as err:
        load(tmp_path, extra, tasks)
    text = "\n".join(str(d) for d in err.value.diagnostics)
    assert "defaults.pool: unknown pool `nope`" in text
    assert "tasks.T1.pool: unknown pool `dbb`" in text and "did you mean `db`?" in text
    assert "tasks.T2.skills[1]: pool `db` does not offer skill `gpu`" in text


def test_policy_and_deadlock_grace_layer_like_other_settings(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write(home / ".config/conductor/config.toml",
          'policy = "mypolicies:Cheapest"\ndeadlock_grace = 5\n')  # fmt: skip
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    wf = load(tmp_path, "", '  T1: {run: "true"}')
    assert (wf.policy, wf.deadlock_grace_s) == (None, None)
    done, cfg = configured(wf, {}, env)
    assert (done.policy, done.deadlock_grace_s) == ("mypolicies:Cheapest", 5.0)
    env["CONDUCTOR_DEADLOCK_GRACE"] = "0.5"
    assert configured(wf, {}, env)[0].deadlock_grace_s == 0.5
    wf = load(tmp_path, "policy: fifo\ndeadlock_grace: 90s", '  T1: {run: "true"}')
    done, cfg = configured(wf, {}, env)
    assert (done.policy, done.deadlock_grace_s) == ("fifo", 90.0)
    assert cfg.sources["policy"] == "workflow"
    bare = {"HOME": str(tmp_path / "nobody")}
    plain = configured(load(tmp_path / "x", "", '  T1: {run: "true"}'), {}, bare)[0]
    assert (plain.policy, plain.deadlock_grace_s) == ("default", DEFAULT_DEADLOCK_GRACE_S)


def test_a_bad_policy_in_config_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "conductor.toml", 'policy = "lifo"\n')
    with pytest.raises(UserError) as err:
        load_config(tmp_path, {})
    assert "`policy` must be default, fifo, cost-aware or module:Class" in str(err.value)
