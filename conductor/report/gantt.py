"""The actual timeline of a run as a mermaid ``gantt`` chart: one bar per attempt.

Rendered from attempt rows alone (no git, no clock beyond the ``now`` handed in), so the
execution log can redraw it after every task completion. Bars sit in one section per
group, in the order the groups first appear in the run; failed attempts are ``crit``
(red), running ones ``active``; interrupted ones ``done`` (grey).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from conductor.report.gaterows import GateRow
from conductor.state.records import AttemptRow

UNGROUPED = "ungrouped"

# The gantt lexer ends a task name at ':', starts comments at '#' and '%%', and ';'
# ends a statement in some versions: none of them may appear in a name or a section.
_UNSAFE = re.compile(r"[:;#%]")

# A line whose first word is one of these is a directive, not a task (the gantt lexer
# is case-insensitive), so a task called "title" or "section" would vanish or break.
GANTT_KEYWORDS = frozenset(
    {
        "gantt",
        "title",
        "section",
        "dateformat",
        "axisformat",
        "tickinterval",
        "excludes",
        "includes",
        "todaymarker",
        "inclusiveenddates",
        "topaxis",
        "weekday",
        "weekend",
        "click",
        "acctitle",
        "accdescr",
        "call",
        "href",
    }
)

TAGS = {"failed": "crit", "running": "active", "interrupted": "done", "cancelled": "done"}


@dataclass(frozen=True)
class Bar:
    """One drawn bar: what the tests (and the chart) are made of."""

    section: str
    name: str
    tag: str  # "", "crit", "active" or "done"
    start_ms: int
    end_ms: int


def gantt_text(text: str) -> str:
    """``text`` made safe as a gantt task name or section title (one line, no separators)."""
    out = " ".join(_UNSAFE.sub("_", text).split()) or "_"
    if out.split(" ", 1)[0].lower() in GANTT_KEYWORDS:
        out = "task " + out
    return out


def bars(
    attempts: Iterable[AttemptRow],
    groups: Mapping[str, str | None],
    now: float,
    live: bool,
    gates: Sequence[GateRow] = (),
) -> list[Bar]:
    """The bars of ``attempts`` and of the ``gates`` that ran, grouped by section (a
    gate in its group's), sections in order of first start.

    ``groups`` maps task id -> group; ``now`` ends the bars of unfinished attempts;
    ``live`` says whether the run is still going (an unfinished attempt of a dead run
    is drawn as ``done``, not ``active``, since nothing is running it any more).
    """
    spans = [(a["started"], a["finished"], groups.get(a["task_id"]), a["state"],
              a["task_id"] if a["n"] == 1 else f"{a['task_id']} (attempt {a['n']})")
             for a in attempts]  # fmt: skip
    spans += [(g.started, g.finished, g.group, g.state, f"gate {g.group}")
              for g in gates if g.started is not None]  # fmt: skip
    by_section: dict[str, list[Bar]] = {}
    for started, finished, group, state, name in sorted(spans, key=lambda s: (s[0], s[4])):
        section = gantt_text(group or UNGROUPED)
        if finished is None and state == "running" and not live:
            state = "interrupted"
        start = round(started * 1000)
        end = max(start + 1, round((finished or now) * 1000))  # never a negative bar
        by_section.setdefault(section, []).append(
            Bar(section, gantt_text(name), TAGS.get(state, ""), start, end)
        )
    return [b for section in by_section.values() for b in section]


def to_gantt(chart_bars: list[Bar], title: str = "") -> str:
    """The mermaid source; times as epoch milliseconds (``dateFormat x``)."""
    lines = ["gantt"]
    if title:
        lines.append(f"    title {gantt_text(title)}")
    # todayMarker off: a log read days later would otherwise stretch the axis to today.
    lines += ["    dateFormat x", "    axisFormat %H:%M:%S", "    todayMarker off"]
    section = None
    for i, b in enumerate(chart_bars, 1):
        if b.section != section:
            section = b.section
            lines.append(f"    section {section}")
        tags = f"{b.tag}, " if b.tag else ""
        lines.append(f"    {b.name} :{tags}a{i}, {b.start_ms}, {b.end_ms}")
    return "\n".join(lines) + "\n"
