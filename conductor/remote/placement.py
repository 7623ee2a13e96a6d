"""A pool's ``resources`` and ``labels`` as Ray task options.

``resources`` uses Ray's names: ``CPU`` (default 1: an agent holds one CPU slot of its node,
so a node never takes more agents than it has CPUs unless the pool says ``CPU: 0``),
``GPU``, ``memory`` (bytes) and any custom resource a node was started with
(``ray start --resources '{"db": 1}'``). ``labels`` become Ray's ``label_selector``: the task
lands only on a node whose labels match (``ray start --labels gpu=a100``; a value may be
``!v``, ``in(a,b)`` or ``!in(a,b)``).

Retries are conductor's, never Ray's (``max_retries=0``): a node that dies mid-task fails
the attempt as infrastructure, and the engine decides where the next one goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_CPUS = 1.0


def needs(resources: Mapping[str, float]) -> dict[str, float]:
    """Everything one task holds on its node, by Ray resource name (CPU defaulted)."""
    return {"CPU": DEFAULT_CPUS, **{str(k): float(v) for k, v in resources.items()}}


def task_options(resources: Mapping[str, float], labels: Mapping[str, str]) -> dict[str, Any]:
    """``.options(...)`` for the Ray task that runs one attempt of a pool's task."""
    need = needs(resources)
    opts: dict[str, Any] = {"num_cpus": need.pop("CPU"), "max_retries": 0,
                            "retry_exceptions": False}  # fmt: skip
    if "GPU" in need:
        opts["num_gpus"] = need.pop("GPU")
    if "memory" in need:
        opts["memory"] = need.pop("memory")
    if need:
        opts["resources"] = need
    if labels:
        opts["label_selector"] = dict(labels)
    return opts
