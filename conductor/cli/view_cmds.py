"""Commands for people: demo, config."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import typer

from conductor.cli.app import command


@command("demo")
def demo_cmd(
    directory: Path | None = typer.Argument(
        None,
        metavar="[DIR]",
        help="Where to create the demo repository (new or empty; default: a temp dir).",
        show_default=False,
    ),
) -> None:
    """Create a sandbox repository with a sample workflow and run it live. No API key needed."""
    from conductor.ops import demo

    code = demo.main(directory, sys.stdout, os.environ)
    raise typer.Exit(code)


SECRET_KEYS = frozenset({"serve.token"})  # credentials: where they come from is enough


def _shown(values: Mapping[str, object]) -> dict[str, object]:
    """The settings as `conductor config` shows them: a credential that is set as ``(set)``."""
    return {key: "(set)" if key in SECRET_KEYS and value else value
            for key, value in values.items()}  # fmt: skip


@command("config")
def config_cmd(
    workflow: str | None = typer.Argument(
        None, metavar="[WORKFLOW]", help="Also apply this workflow file's settings."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON document."),
) -> None:
    """Print the effective settings and where each one came from."""
    from conductor.cli.repo import chosen_repo
    from conductor.spec import config

    start = chosen_repo() or (Path(workflow).parent if workflow else Path.cwd())
    root = config.find_repo_root(start)
    cfg = config.load_config(root, os.environ)
    if workflow is not None:
        from conductor.spec.load import load_workflow

        cfg = config.effective(cfg, config.workflow_values(load_workflow(Path(workflow))), {})
    if as_json:
        doc = {
            "values": _shown(cfg.values),  # never the serve token itself
            "sources": cfg.sources,
            "files": list(cfg.files),
            "user_config": str(config.user_config_path(os.environ)),
            "repo_root": str(root) if root else None,
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    shown = _shown(cfg.values)
    rows = []
    for key in config.KEYS:
        value = shown[key]
        text = str(value).lower() if isinstance(value, bool) else str(value)
        rows.append((key, text, cfg.sources[key]))
    width = max(len(key) for key, _, _ in rows)
    vwidth = max(len(value) for _, value, _ in rows)
    for key, value, source in rows:
        typer.echo(f"{key:<{width}}  {value:<{vwidth}}  {source}")
    if not cfg.files:
        typer.echo(f"\n(no config files; user config would be read from "
                   f"{config.user_config_path(os.environ)})")  # fmt: skip
