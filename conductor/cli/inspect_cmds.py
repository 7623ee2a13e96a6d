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
    from conductor.spec.load import load_workflow

    return load_workflow(Path(path))


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


def hours(h: float) -> str:
    return f"{h:g}h" if h == int(h) else f"{h:.1f}h"


@command("validate")
def validate(workflow: str = WORKFLOW) -> None:
    """Check the workflow file: YAML, schema, references, cycles. Nothing runs."""
    wf = load(workflow)
    make(wf, None, None, False)
    groups = f" in {len(wf.groups)} group(s)" if wf.groups else ""
    typer.echo(f"{workflow}: ok ({len(wf.tasks)} task(s){groups})")


def grouped(wf: Workflow, ids: list[str] | tuple[str, ...]) -> list[tuple[str, str | None]]:
    """(label, task id) rows: a fan-out task's expansions indented under a heading row
    (task id None) that names it, e.g. ``T5  (matrix: 3 tasks, at most 2 at once)``."""
    from conductor.spec.fanout import by_template, note

    rows: list[tuple[str, str | None]] = []
    for template, tids in by_template(wf, ids):
        if template is None:
            rows.append((tids[0], tids[0]))
        else:
            rows.append((f"{template}  ({note(wf, template, tids)})", None))
            rows += [(f"  {t}", t) for t in tids]
    return rows


def render_plan(plan: Plan, skips: dict[str, str] | None = None) -> str:
    wf = plan.workflow
    path = " -> ".join(plan.critical_path)
    out = [
        f"{wf.name}: {len(plan.selected)} task(s) in {len(plan.waves)} wave(s), "
        f"effort {hours(plan.effort_hours)}, critical path {hours(plan.critical_hours)}"
        + (f" ({path})" if path else ""),
        f"makespan at concurrency {plan.concurrency}: waves {hours(plan.makespan_waves_hours)},"
        f" eager {hours(plan.makespan_eager_hours)}",
    ]
    width = max((len(t) + 2 * bool(wf.tasks[t].template) for t in plan.selected), default=2)
    for i, wave in enumerate(plan.waves, 1):
        out.append(f"\nWave {i} ({len(wave)} task(s))")
        for label, tid in grouped(wf, wave):
            if tid is None:  # a fan-out task's heading, its expansions beneath
                out.append(f"  {label}")
                continue
            t = wf.tasks[tid]
            est = hours(t.estimate_s / 3600) if t.estimate_s else "–"
            note = f"  [{skips[tid]}]" if skips and tid in skips else ""
            out.append(
                f"  {label:<{width}}  {t.title[:40]:<40}  {(t.role or '')[:22]:<22}  "
                f"{t.agent:<10} {est:>6}{note}"
            )
    for tid, deps in plan.external_deps.items():
        out.append(f"\nnote: {tid} needs {', '.join(deps)} done first (outside the selection)")
    return "\n".join(out)


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
        typer.echo(render_plan(plan, skips))


@command("list")
def list_cmd(workflow: str = WORKFLOW, as_json: bool = JSON_OPT) -> None:
    """List the tasks with group, agent, dependencies and last known state."""
    from conductor.report.status import last_states
    from conductor.spec.fanout import collapse

    wf = load(workflow)
    states = last_states(wf.path.parent, wf.name)
    rows: list[dict[str, Any]] = [
        {
            "id": t.id,
            "title": t.title,
            "group": t.group,
            "agent": t.agent,
            "depends_on": list(t.deps),
            "state": states.get(t.id, "never run"),
            **({"template": t.template, "matrix": t.matrix} if t.template else {}),
        }
        for t in wf.tasks.values()
    ]
    if as_json:
        typer.echo(json.dumps({"workflow": wf.name, "tasks": rows}, indent=2))
        return
    by_id = {r["id"]: r for r in rows}
    width = max(len(r["id"]) + 2 * bool(r.get("template")) for r in rows)
    for label, tid in grouped(wf, list(by_id)):
        if tid is None:
            typer.echo(label)
            continue
        r = by_id[tid]
        deps = ",".join(collapse(wf, r["depends_on"])) or "-"
        typer.echo(
            f"{label:<{width}}  {r['group'] or '-':<10} {r['agent']:<10} "
            f"{r['state']:<10} {r['title'][:40]:<40} deps: {deps}"
        )


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
