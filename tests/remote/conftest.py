"""A real local multi-node Ray cluster, started once for tests/remote (only if a test here
asks for it): a head node and one more node with different custom resources and labels,
each with its own worker directory (no worktree is shared with the runner's repository).

Small on purpose (one CPU a node, a small object store): the machine running the suite
may have two cores.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason='Ray is not installed (pip install ".[ray]")')
from ray.cluster_utils import Cluster  # noqa: E402

from conductor.remote.cluster import connect  # noqa: E402

STORE = 80 * 1024 * 1024


@dataclass
class LocalCluster:
    cluster: Any
    address: str
    root: Path
    nodes: dict[str, Any] = field(default_factory=dict)  # name -> ray node

    def node_env(self, name: str) -> dict[str, str]:
        home = self.root / "home"
        home.mkdir(parents=True, exist_ok=True)
        return {
            "CONDUCTOR_WORKER_DIR": str(self.worker_dir(name)),
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Worker",
            "GIT_AUTHOR_EMAIL": "worker@example.com",
            "GIT_COMMITTER_NAME": "Worker",
            "GIT_COMMITTER_EMAIL": "worker@example.com",
        }

    def worker_dir(self, name: str) -> Path:
        return self.root / "workers" / name

    def add(self, name: str, resources: dict[str, float], labels: dict[str, str]) -> Any:
        node = self.cluster.add_node(
            num_cpus=1, resources=resources, labels=labels, object_store_memory=STORE,
            env_vars=self.node_env(name), include_dashboard=False,  # lighter: not needed
        )  # fmt: skip
        self.nodes[name] = node
        return node

    def node_id(self, name: str) -> str:
        return str(self.nodes[name].node_id)


@pytest.fixture(scope="package")  # gone once tests/remote are done: no load on the rest
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root = tmp_path_factory.mktemp("ray")
    cluster = Cluster(initialize_head=False)
    local = LocalCluster(cluster, "", root)
    try:
        local.add("head", {"head": 1}, {"zone": "a"})
        local.add("gpu", {"gpuish": 1}, {"zone": "b"})
        cluster.wait_for_nodes()
        local.address = cluster.address
        # the test process joins now, so its own node is one that stays (the run's hub
        # lives on the runner's node; a test kills only nodes it added itself)
        connect(cluster.address)
        os.environ["RAY_ADDRESS"] = cluster.address  # what `ray.address: auto` finds
        yield local
    finally:
        os.environ.pop("RAY_ADDRESS", None)
        ray.shutdown()
        cluster.shutdown()
