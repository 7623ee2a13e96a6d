"""Ray, if installed: importing it, connecting to the cluster once, and what its nodes offer.

``ray`` is the optional extra ``conductor-dag[ray]``; nothing outside this room imports it,
and this module imports it only when asked, so conductor starts (and runs local pools)
without it. A workflow that uses ``executor: ray`` without it fails preflight with exit 2.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from conductor.errors import InfraError, UserError

DEFAULT_ADDRESS = "auto"  # the cluster this machine is part of (`ray start`), or RAY_ADDRESS
NAMESPACE = "conductor"  # where the runs' hubs are named
INSTALL_HINT = 'install the extra: pip install "conductor-dag[ray]"'
PROBE_TIMEOUT_S = 5.0
_lock = threading.Lock()


def installed() -> bool:
    """Ray can be imported (without importing it: that costs a second)."""
    import importlib.util

    try:
        return importlib.util.find_spec("ray") is not None
    except ValueError:  # sys.modules["ray"] is None: imports of it are blocked
        return False


def ray_module() -> ModuleType:
    """The ``ray`` module; a ``UserError`` saying how to install it when it is missing."""
    try:
        import ray
    except ImportError as exc:
        raise UserError(f"`executor: ray` needs Ray, which is not installed ({exc})",
                        hint=INSTALL_HINT) from exc  # fmt: skip
    return ray


def current() -> ModuleType | None:
    """``ray``, if this process has joined a cluster (and not left it: ``ray.shutdown``);
    never joins one."""
    import sys

    ray = sys.modules.get("ray")
    return ray if ray is not None and ray.is_initialized() else None


def connect(address: str = DEFAULT_ADDRESS) -> ModuleType:
    """Join the cluster at ``address`` (once per process; later calls reuse it). Never
    starts a cluster: none reachable is an ``InfraError`` that says how to get one."""
    ray = ray_module()
    with _lock:
        if ray.is_initialized():
            return ray
        try:
            _probe(address or DEFAULT_ADDRESS)
            ray.init(address=address or DEFAULT_ADDRESS, namespace=NAMESPACE,
                     log_to_driver=False, logging_level="ERROR",
                     include_dashboard=False)  # fmt: skip
        except (OSError, RuntimeError, ValueError) as exc:
            raise InfraError(
                f"cannot reach the Ray cluster at {address!r}: {exc}. Start one with "
                "`ray start --head` (and `ray start --address HEAD:6379` on each worker), "
                "or set `ray.address` in config (or RAY_ADDRESS)"
            ) from exc
    return ray


def _probe(address: str) -> None:
    """Fail fast on a cluster address nothing listens on (``ray.init`` would retry for
    minutes): one TCP connect to the GCS ``host:port`` that ``address`` resolves to."""
    import os
    import socket

    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        if not address:
            current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
            with contextlib.suppress(OSError):
                address = current.read_text(encoding="utf-8").strip()
    if not address or "://" in address or ":" not in address:
        return  # nothing to probe: ray.init says what is wrong
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S):
        pass


@dataclass(frozen=True)
class Node:
    """One live node of the cluster: its id, address, resources and labels."""

    node_id: str
    address: str
    resources: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def nodes(ray: Any) -> list[Node]:
    """The cluster's live nodes."""
    found = []
    for n in ray.nodes():
        if n.get("Alive"):
            resources = {str(k): float(v) for k, v in (n.get("Resources") or {}).items()}
            labels = {str(k): str(v) for k, v in (n.get("Labels") or {}).items()}
            found.append(Node(str(n["NodeID"]), str(n.get("NodeManagerAddress", "")),
                              resources, labels))  # fmt: skip
    return found


def label_matches(want: str, have: str | None) -> bool:
    """One label selector value against a node's label: ``v``, ``!v``, ``in(a,b)``,
    ``!in(a,b)`` (Ray's label selector syntax)."""
    negate = want.startswith("!")
    want = want.removeprefix("!")
    if want.startswith("in(") and want.endswith(")"):
        hit = have is not None and have in {v.strip() for v in want[3:-1].split(",")}
    else:
        hit = have == want
    return hit != negate


def fits(node: Node, need: Mapping[str, float], labels: Mapping[str, str]) -> bool:
    """Whether ``node`` could ever run a task needing ``need`` (Ray resource names) on
    nodes labelled ``labels``: its total resources, not what is free right now."""
    enough = all(node.resources.get(k, 0.0) >= v for k, v in need.items() if v > 0)
    return enough and all(label_matches(v, node.labels.get(k)) for k, v in labels.items())
