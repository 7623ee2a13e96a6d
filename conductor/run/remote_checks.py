"""Does a node fit each Ray pool? Before a run (preflight) and while it waits for one.

Preflight of Ray pools, for `run` and `run --validate-only` (exit 2, nothing started).

For the pools with ``executor: ray`` that the selected tasks use: Ray is installed, the
cluster (``ray.address`` in config, default ``auto``) is reachable, and each pool has at
least one live node whose total resources and labels fit one of its tasks — a pool no node
can ever take would leave its tasks waiting forever. And nothing is asked of a remote
attempt that it cannot do: an interactive tmux agent or a ``sandbox:`` (a remote attempt
never runs a sandboxed task unconfined: it refuses instead).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping

from conductor.agents.profiles import profile_for
from conductor.errors import Diagnostic, InfraError, UserError
from conductor.plan.planner import Plan
from conductor.remote import cluster
from conductor.remote.placement import needs
from conductor.spec.model import Loc, Pool, Task, Workflow


def ray_pools(wf: Workflow, plan: Plan) -> dict[str, list[Task]]:
    """Ray pool name -> the selected tasks that run in it."""
    used: dict[str, list[Task]] = {}
    for tid in plan.selected:
        task = wf.tasks[tid]
        if wf.pool(task.pool).executor == "ray":
            used.setdefault(task.pool, []).append(task)
    return used


def _at(loc: Loc | None, fallback: str, message: str, hint: str | None = None) -> Diagnostic:
    if loc is None:
        return Diagnostic(message, fallback, hint=hint)
    return Diagnostic(message, loc.path, loc.line, loc.col, hint)


def _unsupported(wf: Workflow, tasks: list[Task]) -> list[Diagnostic]:
    out = []
    for task in tasks:
        where = str(wf.path)
        try:
            profile = profile_for(wf, task)
        except UserError:
            continue  # an unknown profile is reported by the executable check
        if profile.executor == "tmux":
            out.append(_at(task.loc, where, f"task {task.id}: agent {profile.name} runs in tmux, "
                           f"which pool {task.pool} (`executor: ray`) cannot drive",
                           "run interactive agents in a local pool"))  # fmt: skip
        if task.sandbox is not None:
            hint = "drop `sandbox:` or run the task in a local pool"
            out.append(_at(task.loc, where, f"task {task.id}: `sandbox:` is not available on "
                           f"pool {task.pool} (`executor: ray`); conductor never runs it "
                           "unconfined", hint))  # fmt: skip
    return out


def ray_problems(wf: Workflow, plan: Plan, environ: Mapping[str, str]) -> list[Diagnostic]:
    """Everything that stops the selected tasks of Ray pools from ever running."""
    used = ray_pools(wf, plan)
    if not used:
        return []
    out = [p for tasks in used.values() for p in _unsupported(wf, tasks)]
    first = wf.pool(next(iter(used)))
    if not cluster.installed():
        names = ", ".join(sorted(used))
        return [*out, _at(first.loc, str(wf.path), f"pool {names} runs on Ray (`executor: "
                          "ray`), but Ray is not installed", cluster.INSTALL_HINT)]  # fmt: skip
    from conductor.remote.call import live_nodes
    from conductor.spec.config import find_repo_root, load_config

    address = str(load_config(find_repo_root(wf.source_dir), environ)["ray.address"])
    try:
        nodes = live_nodes(address)
    except (InfraError, UserError) as exc:
        hint = "check `ray status` on the cluster, or `ray.address` in config"
        return [*out, _at(first.loc, str(wf.path), str(exc), hint)]
    for name in used:
        out += _fit_problems(wf.pool(name), nodes, str(wf.path))
    return out


def _fit_problems(pool: Pool, nodes: list[cluster.Node], where: str) -> list[Diagnostic]:
    need = needs(pool.resources)
    if any(cluster.fits(node, need, pool.labels) for node in nodes):
        return []
    wants = ", ".join(f"{k}={v:g}" for k, v in need.items())
    wants += "".join(f", label {k}={v}" for k, v in pool.labels.items())
    offers = "; ".join(_offer(n) for n in nodes[:5]) or "no live node"
    return [_at(pool.loc, where, f"no node of the Ray cluster fits pool {pool.name}: one task "
                f"needs {wants}; the nodes offer: {offers}",
                "start a node with those resources (`ray start --resources`, `--labels`) "
                "or lower the pool's `resources`")]  # fmt: skip


def _offer(node: cluster.Node) -> str:
    shown = {k: v for k, v in node.resources.items()
             if not k.startswith(("node:", "object_store_memory", "memory"))}  # fmt: skip
    text = ", ".join(f"{k}={v:g}" for k, v in sorted(shown.items()))
    labels = ", ".join(f"{k}={v}" for k, v in sorted(node.labels.items())
                       if not k.startswith("ray.io/"))  # fmt: skip
    return f"{node.node_id[:8]}: {text}" + (f" ({labels})" if labels else "")


def clear_when_fit(pools_down: dict[str, str], pool: str, resources: Mapping[str, float],
                   labels: Mapping[str, str], every_s: float) -> None:  # fmt: skip
    """While ``pool`` is down (no live node fits it), look every ``every_s`` for a node that
    does (one came back, or was added) and then lift it: its tasks are dispatched again."""
    def watch() -> None:
        while pool in pools_down:
            time.sleep(every_s)
            ray = cluster.current()
            if ray is None:  # the runner left the cluster: nothing to wait for
                return
            with contextlib.suppress(Exception):  # a cluster going away: look again later
                if any(cluster.fits(n, needs(resources), labels) for n in cluster.nodes(ray)):
                    pools_down.pop(pool, None)

    threading.Thread(target=watch, name=f"pool-{pool}", daemon=True).start()
