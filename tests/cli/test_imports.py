"""Start-up stays light: loading the CLI and reading the store never pull in heavy stacks.

`conductor --help`, `status` and `runs` are what people type most, often in a loop from
another terminal; DESIGN.md §1 keeps the YAML, schema, graph, git and rich stacks lazy so
they start fast. Each test runs the real interpreter with `-X importtime` and names the
import chain of any offender, so a regression says exactly which line to make lazy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conductor.state.store import Store

# Top-level packages that only validate/plan/run need (rich: only the TTY live view).
HEAVY = ("yaml", "jsonschema", "networkx", "git", "rich")


def importtime(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real interpreter under `-X importtime` (its report on stderr); it must succeed."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},  # never litter the source tree
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def import_chains(args: list[str], cwd: Path) -> tuple[dict[str, str], str]:
    """{heavy package: the chain that imported it first}, and the process's stdout."""
    proc = importtime(args, cwd)
    return chains_of(proc.stderr, (*HEAVY, "pydantic")), proc.stdout


def chains_of(importtime: str, wanted: tuple[str, ...]) -> dict[str, str]:
    # -X importtime prints a module after its children, indented two spaces per level;
    # read bottom-up, the live stack of shallower lines is the chain of importers.
    stack: list[tuple[int, str]] = []
    chains: dict[str, str] = {}
    for line in reversed(importtime.splitlines()):
        if not line.startswith("import time:") or line.endswith("imported package"):
            continue
        name = line.rsplit("|", 1)[1]
        depth = (len(name) - len(name.lstrip())) // 2
        stack = [(d, m) for d, m in stack if d < depth] + [(depth, name.strip())]
        top = name.strip().split(".")[0]
        if top in wanted:  # overwritten: the last one read is the first imported
            chains[top] = _chain_to(stack, top)
    return chains


def _chain_to(stack: list[tuple[int, str]], top: str) -> str:
    """The importers down to the first module of package ``top`` (not its internals)."""
    names = [m for _, m in stack]
    first = next(i for i, m in enumerate(names) if m.split(".")[0] == top)
    return " -> ".join(names[: first + 1])


def heavy_only(chains: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in chains.items() if k in HEAVY}


def typer_has_pydantic() -> bool:
    """typer >= 0.29 builds a pydantic TypeAdapter for every parameter it parses."""
    from importlib.metadata import requires

    return any(r.startswith("pydantic") for r in requires("typer") or ())


@pytest.fixture
def stored_run(tmp_path: Path) -> Path:
    """A directory holding a finished run of 30 tasks and 100 events, as status sees it."""
    tasks: list[tuple[str, str | None, str, str, str]] = [
        (f"T{i}", "G", "sh", "pending", "h") for i in range(30)
    ]
    with Store(tmp_path / ".conductor" / "state.db") as store, store.tx():
        store.create_run("20250101-000000-abcd", "wf.yaml", "wf", "conductor/wf", {}, tasks)
        for i in range(30):
            store.update_task("20250101-000000-abcd", f"T{i}", state="succeeded", attempts=1)
        for i in range(100):
            store.emit("20250101-000000-abcd", "task_progress", f"T{i % 30}", percent=i)
        store.update_run("20250101-000000-abcd", state="succeeded")
    return tmp_path


LIGHT_COMMANDS = {
    "import conductor.cli": ["-c", "import conductor.cli"],
    "conductor --help": ["-m", "conductor", "--help"],
    "conductor status --help": ["-m", "conductor", "status", "--help"],
}


@pytest.mark.parametrize("what", sorted(LIGHT_COMMANDS))
def test_loading_the_cli_imports_no_heavy_stack(what: str, tmp_path: Path) -> None:
    chains, _out = import_chains(LIGHT_COMMANDS[what], tmp_path)
    assert heavy_only(chains) == {}, f"`{what}` imports heavy stacks: {heavy_only(chains)}"


@pytest.mark.parametrize("cmd", [["status", "--json", "--recent", "5"], ["runs", "--json"]])
def test_reading_the_store_imports_no_heavy_stack(cmd: list[str], stored_run: Path) -> None:
    chains, out = import_chains(["-m", "conductor", *cmd], stored_run)
    doc = json.loads(out)
    # the command really read the run (not an early error that skipped the imports)
    assert "20250101-000000-abcd" in json.dumps(doc)
    assert heavy_only(chains) == {}, f"`{' '.join(cmd)}` imports: {heavy_only(chains)}"


# typer>=0.29 imports pydantic (~0.13 s) to coerce every parameter: pyproject pins <0.29
def test_status_does_not_pay_for_pydantic(stored_run: Path) -> None:
    # Not conductor's own import, but it alone puts `status --json` over 2x its floor.
    chains, _out = import_chains(["-m", "conductor", "status", "--json"], stored_run)
    assert "pydantic" not in chains, f"pydantic imported via {chains.get('pydantic')}"


def test_a_run_into_a_pipe_imports_neither_rich_nor_the_remote_stack(tmp_path: Path) -> None:
    # rich only draws the live view on a terminal; Ray, its asyncio and the remote
    # attempt machinery only serve `executor: ray` pools (about 0.1 s of every start)
    from tests.testing.repos import make_repo

    repo = make_repo(tmp_path / "repo")
    (repo / "wf.yaml").write_text("version: 1\nname: t\ntasks:\n  A: {run: 'true'}\n")
    proc = importtime(["-m", "conductor", "run", "wf.yaml"], repo, timeout=120)
    chains = chains_of(proc.stderr, ("rich", "asyncio", "ray"))
    assert chains == {}, f"a plain run imports: {chains}"
    assert "conductor.run.remote_attempt" not in proc.stderr


def test_the_status_view_names_the_default_pool_as_the_spec_does() -> None:
    # report.poolreport keeps its own copy so that `status` need not import spec.model
    from conductor.report import poolreport
    from conductor.spec import model

    assert poolreport.DEFAULT_POOL == model.DEFAULT_POOL


def test_status_does_not_import_the_workflow_model(stored_run: Path) -> None:
    proc = importtime(["-m", "conductor", "status", "--json"], stored_run)
    assert "conductor.spec.model" not in proc.stderr
