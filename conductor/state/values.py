"""The `outputs` column of an attempt: the values its task wrote to $CONDUCTOR_OUTPUT, kept
as a JSON object (masked before it was stored), read back for status, export and the log."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any


def outputs_of(attempt: Mapping[str, Any]) -> dict[str, str]:
    """The values an attempt recorded; {} for none (or a column it cannot read)."""
    raw = attempt.get("outputs")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def task_outputs(attempts: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """task -> the values it wrote in a run: its newest succeeded attempt's, else (it has
    not succeeded) its newest attempt's that wrote any. Tasks that wrote none are absent."""
    best: dict[str, tuple[bool, int, dict[str, str]]] = {}
    for a in attempts:
        values = outputs_of(a)
        if not values:
            continue
        key = (a["state"] == "succeeded", int(a["n"]))
        held = best.get(a["task_id"])
        if held is None or key > held[:2]:
            best[a["task_id"]] = (*key, values)
    return {task: values for task, (_ok, _n, values) in best.items()}
