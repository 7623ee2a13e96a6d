"""Why a task failed, in the lines that say it: the failed check's last words
(``assert 0 == 4``, ``FAILED t.py::test_x``), else the tail of the agent's log, else the
recorded error. `status` shows them instead of the command that failed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

from conductor.report.mdtext import clean, tail_file
from conductor.state.records import AttemptRow

SHOWN = 3  # lines of a failure `status` shows beneath its table
# Lines that say nothing on their own: rules (`=====`, `____ test_x ____`), pytest's
# progress dots and closing count (`1 failed in 0.02s`), conductor's own notes in an
# agent log, the `exit code 1` it appends to a check's output.
_NOISE = re.compile(
    r"^\s*(?:[=_\-*~#.]{3,}.*[=_\-*~#.]{3,}|[=_\-*~]{3,}|[.FEsx]+\s*\[\s*\d+%\]"
    r"|#\s*conductor:.*|\.\.\. \(\d+ earlier line\(s\) omitted\)|exit code -?\d+"
    r"|=*\s*\d+ (?:failed|passed|errors?|skipped)\b.* in [\d.]+s\b.*)\s*$"
)


def meaningful(text: str, n: int = SHOWN) -> list[str]:
    """The last ``n`` lines of ``text`` that carry information, right-stripped."""
    out = [ln.rstrip() for ln in clean(text).splitlines()]
    out = [ln for ln in out if ln.strip() and not _NOISE.match(ln)]
    return out[-n:]


def gate_lines(output: str, n: int = SHOWN) -> list[str]:
    """A failed gate's last meaningful lines: its checks' own output, without the
    ``1 check(s) failed:`` / ``- run: …`` headings of its summary (run/validators.py)."""
    said = [ln[4:] for ln in output.splitlines() if ln.startswith("    ")]
    return meaningful("\n".join(said), n) or meaningful(output, n)


def _failed_checks(att: AttemptRow) -> list[str]:
    try:
        results = json.loads(att["checks"] or "[]")
    except ValueError:
        return []
    text = "\n".join(str(r.get("output") or "") for r in results if not r.get("ok"))
    return meaningful(text)


def failure_lines(atts: Sequence[AttemptRow], error: str | None, n: int = SHOWN) -> list[str]:
    """What ended the last finished attempt: its failed checks' output, else its log's
    tail, else ``error``."""
    done = [a for a in atts if a["finished"] and a["state"] != "succeeded"]
    if done:
        last = done[-1]
        lines = _failed_checks(last)
        if not lines and not (last["checks"] or "").strip():  # not a validation failure
            lines = meaningful(tail_file(last["log_path"], 40) or "", n)
        if lines:
            return lines[-n:]
    return meaningful(error or "", n)


def failures_by_task(
    attempts: Iterable[AttemptRow], errors: dict[str, str | None]
) -> dict[str, list[str]]:
    """``failure_lines`` of each task in ``errors`` (the failed ones)."""
    by_task: dict[str, list[AttemptRow]] = {}
    for a in sorted(attempts, key=lambda r: r["n"]):
        if a["task_id"] in errors:
            by_task.setdefault(a["task_id"], []).append(a)
    return {t: failure_lines(by_task.get(t, []), err) for t, err in errors.items()}
