"""The runner's handle on one remote attempt: submit it, hear from it, stop it, get its result.

A remote attempt ends in one of three ways, and the runner must tell them apart:

* the job returned (whatever became of the agent): :meth:`Call.result` returns its value;
* the job raised: the exception the worker raised is raised here (a ``ConductorError``
  keeps its type, so git trouble on the worker is retried like git trouble here);
* the node or the worker process died, or Ray lost the task: :class:`NodeLost`, an
  infrastructure failure that must not count against the task's ``retries``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from conductor.errors import ConductorError, InfraError
from conductor.remote import hub as hubs
from conductor.remote.cluster import Node, connect, nodes
from conductor.remote.worker import serve

STOP_WAIT_S = 30.0  # after asking a worker to stop: how long before Ray kills it instead


class NodeLost(InfraError):
    """The node (or the worker process) running an attempt died, or Ray lost the task."""


class Call:
    """One submitted attempt. Not thread-safe: the attempt's own thread drives it."""

    def __init__(self, ray: Any, hub: Any, run_id: str, key: str, ref: Any) -> None:
        self.ray, self.hub, self.run_id, self.key, self.ref = ray, hub, run_id, key, ref

    def messages(self, wait_s: float) -> tuple[list[hubs.Message], list[Any]]:
        """What the worker sent (messages, questions), waiting up to ``wait_s``."""
        try:
            items, asks = self.ray.get(self.hub.drain.remote(self.key, wait_s))
        except self.ray.exceptions.RayError as exc:
            hubs.drop(self.run_id)  # its node died: the retry makes a new one
            raise NodeLost(f"the run's hub is gone: {_first_line(exc)}") from exc
        return list(items), list(asks)

    def answer(self, reply: list[Any]) -> None:
        self.ray.get(self.hub.answer.remote(self.key, reply))

    def put(self, data: bytes) -> Any:
        """``data`` in the object store (the worker fetches it from there); keep the ref
        until the attempt ends."""
        return self.ray.put(data)

    def stop(self, hard: bool) -> None:
        """Ask the worker to stop its command: TERM, grace, KILL — or KILL at once."""
        level = hubs.STOP_KILL if hard else hubs.STOP_CANCEL
        self.ray.get(self.hub.stop.remote(self.key, level))

    def abandon(self) -> None:
        """Last resort for a worker that does not answer a stop: Ray kills its process
        (the command's processes are swept on that node by ``sweep_everywhere``)."""
        self.ray.cancel(self.ref, force=True)

    def done(self) -> bool:
        ready, _ = self.ray.wait([self.ref], timeout=0)
        return bool(ready)

    def result(self) -> Any:
        exc_mod = self.ray.exceptions
        try:
            return self.ray.get(self.ref)
        except exc_mod.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ConductorError):
                raise cause from exc
            if isinstance(cause, (exc_mod.RayError, OSError)):
                raise NodeLost(f"the worker failed: {cause}") from exc
            raise InfraError(f"the remote attempt raised {cause!r}") from exc
        except exc_mod.RayError as exc:  # node died, worker crashed, task cancelled or lost
            raise NodeLost(_lost_reason(exc)) from exc
        finally:
            with contextlib.suppress(Exception):  # a hub gone with its node forgets anyway
                self.ray.get(self.hub.forget.remote(self.key))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _lost_reason(exc: BaseException) -> str:
    return f"worker node lost ({type(exc).__name__}: {_first_line(exc)})"


def submit(
    address: str,
    run_id: str,
    key: str,
    job: Callable[..., Any],
    spec: Any,
    options: Mapping[str, Any],
) -> Call:
    """Run ``job(spec, link)`` on a node chosen by ``options`` (see placement.py)."""
    ray = connect(address)
    hub = hubs.hub_for(ray, run_id)
    remote = ray.remote(serve).options(name=f"conductor:{key}", **options)
    ref = remote.remote(job, spec, hub, key)
    return Call(ray, hub, run_id, key, ref)


def sweep_everywhere(
    address: str, prefix: str, grace_s: float = 2.0, tidy: Callable[..., Any] | None = None,
    tidy_args: tuple[Any, ...] = (),
) -> dict[str, list[int]]:
    """Stop, on every live node, the processes whose marker starts with ``prefix`` (those
    a dead runner's remote attempts left), then run ``tidy(*tidy_args)`` there; {node id:
    pids found}."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from conductor.remote.worker import sweep

    ray = connect(address)
    found: dict[str, list[int]] = {}
    refs: dict[str, Any] = {}
    for node in nodes(ray):
        strategy = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
        task = ray.remote(sweep).options(num_cpus=0, max_retries=0, scheduling_strategy=strategy)
        refs[node.node_id] = task.remote(prefix, grace_s, tidy, tidy_args)
    for node_id, ref in refs.items():
        try:
            found[node_id] = list(ray.get(ref, timeout=60))
        except ray.exceptions.RayError:
            found[node_id] = []  # died meanwhile: nothing of ours runs there any more
    return found


def live_nodes(address: str) -> list[Node]:
    return nodes(connect(address))
