"""Configuration: precedence of user, repository, workflow and flag values; key errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conductor.errors import UserError
from conductor.spec.config import effective, load_config, run_settings, workflow_values
from conductor.spec.load import load_workflow
from tests.testing.repos import write
from tests.testing.runner import cli, write_workflow

WF = """
version: 1
name: t
{extra}
tasks:
  A: {{run: "true"}}
"""


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), **extra}


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    home, repo = tmp_path / "home", tmp_path / "repo"
    write(home / ".config/conductor/config.toml",
          'concurrency = 2\nstrategy = "eager"\nemoji = false\ncolor = "always"\n')  # fmt: skip
    write(repo / "pyproject.toml", '[project]\nname = "x"\n\n[tool.conductor]\nconcurrency = 6\n'
          '\n[tool.conductor.alerts]\nmin_free_disk_mb = 2048\n')  # fmt: skip
    write(repo / "conductor.toml", 'keep = "always"\n')
    env = env_for(home, NO_COLOR="1")
    cfg = load_config(repo, env)
    assert cfg.concurrency == 6 and cfg.sources["concurrency"] == "pyproject.toml [tool.conductor]"
    assert cfg.strategy == "eager" and cfg.sources["strategy"] == "~/.config/conductor/config.toml"
    assert cfg.emoji is False and cfg.keep == "always" and cfg.sources["keep"] == "conductor.toml"
    assert cfg.min_free_disk_mb == 2048 and cfg.sources["alerts.min_free_disk_mb"].startswith("py")
    assert cfg.color == "always"  # the user's own config beats NO_COLOR (no-color.org)
    assert cfg.verbosity == "normal" and cfg.sources["verbosity"] == "built-in"
    assert len(cfg.files) == 3

    final = effective(
        cfg, {"concurrency": 8, "strategy": "waves"}, {"concurrency": 10, "strategy": None}
    )
    assert final.concurrency == 10 and final.sources["concurrency"] == "--concurrency"
    assert final.strategy == "waves" and final.sources["strategy"] == "workflow"
    quiet = effective(cfg, {}, {"verbosity": "quiet", "color": "never"})
    assert quiet.sources["verbosity"] == "--quiet" and quiet.sources["color"] == "--no-color"


def test_no_color_and_conductor_variables(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo" / "conductor.toml", "retry_backoff = 5\n").parent
    cfg = load_config(repo, env_for(tmp_path, NO_COLOR="1", CONDUCTOR_RETRY_BACKOFF="0.1"))
    assert cfg.color == "never" and cfg.sources["color"] == "NO_COLOR"
    # a variable set for this invocation beats the repository's default
    assert cfg.retry_backoff == 0.1 and cfg.sources["retry_backoff"] == "$CONDUCTOR_RETRY_BACKOFF"
    # the engine gets the repository's value, as a value (never through os.environ)
    assert run_settings(load_config(repo, env_for(tmp_path))).retry_backoff_s == 5.0
    assert run_settings(cfg).retry_backoff_s == 0.1


@pytest.mark.parametrize(
    ("text", "where", "message", "hint"),
    [
        ("[tool.conductor]\nconcurrency = 2\nconcurency = 3\n", ":3", "unknown config key `concurency`",
         "did you mean `concurrency`?"),
        ("[tool.conductor]\n\n[tool.conductor.alerts]\nmin_free_memory = 100\n", ":4",
         "unknown config key `alerts.min_free_memory`", "did you mean `alerts.min_free_memory_mb`?"),
        ('[tool.conductor]\ncolor = "sometimes"\n', ":2", "`color` must be auto, always or never", None),
        ("[tool.conductor]\nconcurrency = 0\n", ":2", "`concurrency` must be an integer >= 1", None),
        ("[tool.conductor]\nxyzzy = 1\n", ":2", "unknown config key `xyzzy`", "known keys: concurrency"),
    ],
)  # fmt: skip
def test_bad_keys_are_located_with_a_hint(
    tmp_path: Path, text: str, where: str, message: str, hint: str | None
) -> None:
    path = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n\n' + text)
    with pytest.raises(UserError) as err:
        load_config(tmp_path, env_for(tmp_path))
    line = int(where[1:]) + 3  # the [project] table comes first
    assert str(err.value).startswith(f"{path}:{line}: {message}")
    if hint:
        assert err.value.hint is not None and err.value.hint.startswith(hint)


def test_invalid_toml_is_a_user_error(tmp_path: Path) -> None:
    write(tmp_path / "home/.config/conductor/config.toml", "concurrency = \n")
    with pytest.raises(UserError, match="invalid TOML"):
        load_config(None, env_for(tmp_path / "home"))


def test_workflow_values_count_only_what_the_file_says(repo: Path) -> None:
    write_workflow(repo, WF.format(extra="concurrency: 4"), "explicit.yaml")
    write_workflow(repo, WF.format(extra="workspace: {keep: never}"), "implicit.yaml")
    assert workflow_values(load_workflow(repo / "explicit.yaml")) == {"concurrency": 4}
    assert workflow_values(load_workflow(repo / "implicit.yaml")) == {"keep": "never"}


def test_config_command_shows_values_and_sources(repo: Path) -> None:
    write(repo / "conductor.toml", "concurrency = 6\nverbosity = 'verbose'\n")
    write_workflow(repo, WF.format(extra="strategy: eager"))
    proc = cli(repo, "config", "wf.yaml")
    assert proc.returncode == 0, proc.stderr
    lines = {
        line.split()[0]: line.split(maxsplit=2)[1:] for line in proc.stdout.splitlines() if line
    }
    assert lines["concurrency"] == ["6", "conductor.toml"]
    assert lines["strategy"] == ["eager", "workflow"]
    assert lines["keep"] == ["on_failure", "built-in"]
    doc = json.loads(cli(repo, "config", "--json").stdout)
    assert doc["values"]["verbosity"] == "verbose" and doc["sources"]["strategy"] == "built-in"


def test_config_command_reports_unknown_keys_without_traceback(repo: Path) -> None:
    write(repo / "conductor.toml", "# defaults\nstrategy = 'eager'\nemojis = false\n")
    proc = cli(repo, "config")
    assert proc.returncode == 2
    assert "conductor.toml:3: unknown config key `emojis`" in proc.stderr
    assert "did you mean `emoji`?" in proc.stderr and "Traceback" not in proc.stderr
