"""A pool's resources and labels as Ray options, and whether a node fits them (no cluster)."""

from __future__ import annotations

from conductor.remote.cluster import Node, fits, label_matches
from conductor.remote.placement import needs, task_options


def test_resources_become_ray_options_and_retries_stay_conductors() -> None:
    opts = task_options({"GPU": 1, "memory": 2e9, "db": 1}, {"zone": "eu"})
    assert opts == {"num_cpus": 1.0, "num_gpus": 1.0, "memory": 2e9, "resources": {"db": 1.0},
                    "label_selector": {"zone": "eu"}, "max_retries": 0,
                    "retry_exceptions": False}  # fmt: skip
    assert task_options({"CPU": 0}, {})["num_cpus"] == 0.0  # a pool may hold no CPU


def test_label_selector_values() -> None:
    assert label_matches("eu", "eu") and not label_matches("eu", "us")
    assert label_matches("!eu", "us") and label_matches("!eu", None)
    assert label_matches("in(eu, us)", "us") and not label_matches("in(eu,us)", None)
    assert label_matches("!in(eu,us)", "asia") and not label_matches("!in(eu,us)", "eu")


def test_a_node_fits_by_its_total_resources_and_labels() -> None:
    node = Node("n1", "10.0.0.1", {"CPU": 2, "gpuish": 1}, {"zone": "b"})
    assert fits(node, needs({"gpuish": 1}), {"zone": "b"})
    assert not fits(node, needs({"gpuish": 2}), {})
    assert not fits(node, needs({"CPU": 4}), {})
    assert not fits(node, needs({}), {"zone": "a"})
    assert fits(node, needs({"CPU": 0, "other": 0}), {})  # asking for nothing fits
