"""Commands that run nothing: validate, plan, list, graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from conductor.cli.app import command

if TYPE_CHECKING:
    from conductor.plan.planner import Plan
    from conductor.spec.model import Workflow

WORKFLOW = typer.Argument(
    ..., help="The workflow YAML file.", metavar="WORKFLOW", show_default=False
)
GROUP_OPT = typer.Option(
    None, "--batch-group", "-g", help="Select the tasks of GROUP (repeatable)."
)
TASK_OPT = typer.Option(None, "--task", "-t", help="Select TASK (repeatable).")
DEPS_OPT = typer.Option(False, "--with-deps", help="Pull the selection's dependencies in too.")
JSON_OPT = typer.Option(False, "--json", help="Print a JSON document.")


def load(path: str) -> Workflow:
    """The workflow at ``path``, acting on the --repo repository when one was given."""
    from conductor.cli.repo import chosen_repo
    from conductor.spec.load import load_workflow

    wf = load_workflow(Path(path))
    repo = chosen_repo()
    if repo is None:
        return wf
    import dataclasses

    return dataclasses.replace(wf, repo_dir=_repo_root(repo))


def _repo_root(repo: Path) -> Path:
    """The root of the git repository at ``repo``: said plainly when there is none."""
    from conductor.git.workspace import Workspace

    return Workspace.discover(repo).root


def make(
    wf: Workflow,
    groups: list[str] | None,
    tasks: list[str] | None,
    with_deps: bool,
    concurrency: int | None = None,
) -> Plan:
    from conductor.plan.planner import make_plan

    return make_plan(
        wf, groups=groups or (), tasks=tasks or (), with_deps=with_deps, concurrency=concurrency
    )


def plan_text(plan: Plan, skips: dict[str, str], outside_done: list[str] | None = None) -> str:
    """`plan` (and `run --validate-only`) as a table sized to the terminal."""
    from conductor.console.columns import show, terminal_width
    from conductor.console.planview import plan_lines

    return show(plan_lines(plan, skips, outside_done or [], terminal_width()))


@command("validate")
def validate(workflow: str = WORKFLOW) -> None:
    """Check the workflow file: YAML, schema, references, cycles. Nothing runs."""
    wf = load(workflow)
    make(wf, None, None, False)
    n, g = len(wf.tasks), len(wf.groups)
    groups = f" in {g} group{'s' * (g != 1)}" if g else ""
    typer.echo(f"{workflow}: ok, {n} task{'s' * (n != 1)}{groups}")


@command("plan")
def plan_cmd(
    workflow: str = WORKFLOW,
    batch_group: list[str] | None = GROUP_OPT,
    task: list[str] | None = TASK_OPT,
    with_deps: bool = DEPS_OPT,
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-j", min=1, help="Assume N tasks at once."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Show the waves, the critical path, effort and makespan."""
    from conductor.plan.planner import plan_to_json
    from conductor.run.uptodate import skip_reasons

    plan = make(load(workflow), batch_group, task, with_deps, concurrency)
    skips = skip_reasons(plan.workflow, plan)  # only looks when runs were recorded here
    if as_json:
        doc = plan_to_json(plan)
        doc["skip"] = skips
        typer.echo(json.dumps(doc, indent=2))
    else:
        from conductor.run.uptodate import done_outside

        typer.echo(plan_text(plan, skips, done_outside(plan.workflow, plan)))


@command("list")
def list_cmd(workflow: str = WORKFLOW, as_json: bool = JSON_OPT) -> None:
    """List the tasks with group, agent, dependencies and last known state."""
    from conductor.report.status import last_states

    wf = load(workflow)
    states = last_states(wf.repo_start, wf.name)
    rows: list[dict[str, Any]] = [
        {
            "id": t.id,
            "title": t.title,
            "group": t.group,
            "agent": t.agent,
            "depends_on": list(t.deps),
            "state": states.get(t.id, ("never run", None))[0],
            "reason": states.get(t.id, ("", None))[1],  # why it was skipped, or failed
            **({"template": t.template, "matrix": t.matrix} if t.template else {}),
        }
        for t in wf.tasks.values()
    ]
    if as_json:
        typer.echo(json.dumps({"workflow": wf.name, "tasks": rows}, indent=2))
        return
    from conductor.console.columns import show, terminal_width
    from conductor.console.planview import list_lines

    typer.echo(show(list_lines(wf, rows, terminal_width())))


@command("graph")
def graph_cmd(
    workflow: str = WORKFLOW,
    fmt: str = typer.Option("mermaid", "--format", "-f", help="mermaid or dot."),
) -> None:
    """Print the task graph as mermaid (renders on GitHub) or Graphviz dot."""
    from conductor.errors import UserError
    from conductor.report.graphs import to_dot, to_mermaid

    if fmt not in ("mermaid", "dot"):
        raise UserError(f"unknown format `{fmt}`", hint="use --format mermaid or --format dot")
    wf = load(workflow)
    typer.echo(to_mermaid(wf) if fmt == "mermaid" else to_dot(wf))
