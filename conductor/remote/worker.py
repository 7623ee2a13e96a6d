"""What Ray runs on a node: open the link to the run's hub, run the job, close the link.

The job (``conductor.run.remote_work.execute``) does the attempt's work with conductor's
own git and executor code; this wrapper only gives it its :class:`~.hub.Link`: where to
send lines and progress, whom to ask for commits, and the stop signal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conductor.exec.sweep import sweep as sweep_marked
from conductor.remote.hub import END, Link


def serve(job: Callable[[Any, Link], Any], spec: Any, hub: Any, key: str) -> Any:
    import ray

    link = Link(ray, hub, key).start()
    try:
        return job(spec, link)
    finally:
        link.send(END)  # the runner stops polling and waits for the result itself
        link.close()


def sweep(prefix: str, grace_s: float, tidy: Callable[..., Any] | None = None,
          tidy_args: tuple[Any, ...] = ()) -> list[int]:  # fmt: skip
    """On one node: stop every process whose marker starts with ``prefix``, then
    ``tidy(*tidy_args)`` (what those attempts left on disk there)."""
    found = sweep_marked(prefix, grace_s)
    if tidy is not None:
        tidy(*tidy_args)
    return found
