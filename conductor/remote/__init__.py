"""Many machines: the Ray transport of the `ray` executor (DESIGN §8).

A pool with ``executor: ray`` runs each attempt of its tasks as one Ray task on a node of
an existing cluster (``ray.address`` in config, default ``auto``). This room is the
transport only; what runs on the node and what the runner does with the result live in
``conductor.run.remote_work`` and ``conductor.run.remote_attempt``, and the commits travel
as git bundles (``conductor.git.bundles``). The parts:

* :mod:`.cluster` — importing Ray (an optional extra: conductor imports and runs without
  it), connecting once per process, the nodes and whether a pool's resources and labels
  fit one of them;
* :mod:`.placement` — a pool's ``resources`` and ``labels`` as Ray task options, so a task
  lands only on a node that can run it;
* :mod:`.hub` — one small actor per run on the runner's node, the mailbox between the
  runner and its remote attempts: log lines, steps and progress flow in, the stop signal
  (cancel, timeout, Ctrl-C) and the bundle the worker asked for flow out. The worker's end
  (:class:`~.hub.Link`) exchanges with it a few times a second; a worker that loses the
  hub (the runner died) stops its command as on Ctrl-C;
* :mod:`.call` — the runner's handle on one remote attempt: submit, poll, stop, the result,
  and a node that died told apart from a task that failed (``NodeLost``);
* :mod:`.worker` — the function Ray runs on the node: it opens the link and calls the job.

Nothing here imports ``conductor.run``: the job a worker runs is handed to :func:`.call.submit`
as a function (Ray ships it by reference; the worker has conductor installed, same version).
"""

# `attempts.host` of a remote attempt starts with this (then `:<node>`); kept here, light,
# so recovery can tell remote attempts apart without importing Ray or asyncio.
RAY_HOST = "ray"
