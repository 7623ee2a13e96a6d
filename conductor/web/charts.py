"""The two drawings of a run page, as inline SVG made here: the DAG and the gantt.

Drawn on the server rather than by a JavaScript graph library: the layout conductor
wants is fixed by the plan already (a column per wave, a lane per group), so it is a
few lines of arithmetic, not a graph-layout problem, and the page stays one small file
of script with nothing vendored. Each task is a ``<g data-task=ID>`` whose class names
its state, so the page recolours a task by changing one class when an event arrives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from conductor.report.gantt import bars
from conductor.state.records import AttemptRow
from conductor.web.markup import esc, href, state_class
from conductor.web.shape import Shape

COL_W, NODE_W, NODE_H, ROW_H = 180, 150, 24, 32
LABEL_W, TOP, PAD = 130, 28, 8
MAX_LABEL = 20  # characters of a task id shown in its box (the full id is its tooltip)


@dataclass(frozen=True)
class Lane:
    group: str | None
    y: int
    height: int


def _lanes(shape: Shape) -> list[str | None]:
    """Groups in the order their first task appears in the run (ungrouped first)."""
    return sorted(dict.fromkeys(shape.groups.values()), key=lambda g: g is not None)


def layout(shape: Shape) -> tuple[dict[str, tuple[int, int]], list[Lane], int, int]:
    """Box positions (top-left) per task, the lanes, and the drawing's width and height."""
    pos: dict[str, tuple[int, int]] = {}
    lanes: list[Lane] = []
    y = TOP
    for group in _lanes(shape):
        cells = [[t for t in wave if shape.groups.get(t) == group] for wave in shape.waves]
        rows = max((len(c) for c in cells), default=0) or 1
        for w, cell in enumerate(cells):
            for r, tid in enumerate(cell):
                pos[tid] = (LABEL_W + w * COL_W, y + PAD + r * ROW_H)
        height = rows * ROW_H + PAD
        lanes.append(Lane(group, y, height))
        y += height + PAD
    width = LABEL_W + max(1, len(shape.waves)) * COL_W
    return pos, lanes, width, y


def _node(tid: str, xy: tuple[int, int], state: str, link: str) -> str:
    x, y = xy
    label = tid if len(tid) <= MAX_LABEL else tid[: MAX_LABEL - 1] + "…"
    return (f"<g class='node {state_class(state)}' data-task='{esc(tid)}'>"
            f"<a href='{link}'><title>{esc(tid)}: {esc(state)}</title>"
            f"<rect x='{x}' y='{y}' width='{NODE_W}' height='{NODE_H}' rx='5'/>"
            f"<text x='{x + 8}' y='{y + 16}'>{esc(label)}</text></a></g>")  # fmt: skip


def _edge(a: tuple[int, int], b: tuple[int, int]) -> str:
    x1, y1 = a[0] + NODE_W, a[1] + NODE_H // 2
    x2, y2 = b[0], b[1] + NODE_H // 2
    mid = (x1 + x2) // 2
    return f"<path d='M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 4},{y2}'/>"


def _lane_label(lane: Lane, after: Sequence[str], width: int) -> str:
    name = lane.group or "(no group)"
    tail = f"<text class=after x='6' y='{lane.y + 32}'>after {esc(', '.join(after))}</text>" \
        if after else ""  # fmt: skip
    return (f"<g class=lane><rect x='2' y='{lane.y}' width='{width - 4}' "
            f"height='{lane.height}' rx='6'/><text x='6' y='{lane.y + 16}'>{esc(name)}"
            f"</text>{tail}</g>")  # fmt: skip


def dag_svg(shape: Shape, states: Mapping[str, str], run_id: str, token: str | None) -> str:
    """The DAG: a column per wave, a lane per group, edges as written on the tasks."""
    pos, lanes, width, height = layout(shape)
    heads = "".join(f"<text class=wave x='{LABEL_W + w * COL_W}' y='16'>wave {w + 1}</text>"
                    for w in range(len(shape.waves)))  # fmt: skip
    lane_svg = "".join(_lane_label(ln, shape.group_deps.get(ln.group or "", ()), width)
                       for ln in lanes)  # fmt: skip
    edges = "".join(_edge(pos[a], pos[b]) for a, b in shape.edges if a in pos and b in pos)
    nodes = "".join(
        _node(t, xy, states.get(t, "pending"), href(f"/runs/{run_id}/tasks/{t}", token))
        for t, xy in pos.items()
    )
    return (f"<svg class=dag xmlns='http://www.w3.org/2000/svg' width='{width}' "
            f"height='{height}' viewBox='0 0 {width} {height}' role=img "
            f"aria-label='task graph'><defs><marker id=arrow viewBox='0 0 8 8' refX='7' "
            f"refY='4' markerWidth='7' markerHeight='7' orient=auto><path d='M0,0 L8,4 L0,8 "
            f"z'/></marker></defs>{heads}{lane_svg}<g class=edges>{edges}</g>{nodes}</svg>")


# -- the gantt ------------------------------------------------------------------------

GANTT_W, BAR_H, BAR_GAP, NAME_W = 760, 14, 4, 190
TAG_CLASS = {"crit": "failed", "active": "running", "done": "interrupted", "": "succeeded"}


def _ticks(span: float) -> list[float]:
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
                 if span / s <= 8), 14400)  # fmt: skip
    return [i * step for i in range(int(span // step) + 1)]


def gantt_svg(attempts: Sequence[AttemptRow], groups: Mapping[str, str | None],
              now: float, live: bool) -> str:  # fmt: skip
    """One bar per attempt on a shared time axis (seconds since the first start)."""
    drawn = bars(attempts, groups, now, live)
    if not drawn:
        return "<p class=empty>no attempts yet</p>"
    t0 = min(b.start_ms for b in drawn)
    span = max(1.0, (max(b.end_ms for b in drawn) - t0) / 1000)
    scale = (GANTT_W - NAME_W - 10) / span
    height = TOP + len(drawn) * (BAR_H + BAR_GAP)
    axis = "".join(f"<text class=tick x='{NAME_W + s * scale:.1f}' y='14'>{_tick(s)}</text>"
                   for s in _ticks(span))  # fmt: skip
    rows = []
    for i, b in enumerate(drawn):
        y = TOP + i * (BAR_H + BAR_GAP)
        x = NAME_W + (b.start_ms - t0) / 1000 * scale
        w = max(2.0, (b.end_ms - b.start_ms) / 1000 * scale)
        secs = (b.end_ms - b.start_ms) / 1000
        rows.append(f"<g class='bar {state_class(TAG_CLASS.get(b.tag, 'succeeded'))}'>"
                    f"<title>{esc(b.name)} ({esc(b.section)}): {secs:.1f}s</title>"
                    f"<text x='4' y='{y + 11}'>{esc(b.name[:28])}</text>"
                    f"<rect x='{x:.1f}' y='{y}' width='{w:.1f}' height='{BAR_H}' rx='3'/></g>")
    return (f"<svg class=gantt xmlns='http://www.w3.org/2000/svg' width='{GANTT_W}' "
            f"height='{height}' viewBox='0 0 {GANTT_W} {height}' role=img "
            f"aria-label='attempts over time'>{axis}{''.join(rows)}</svg>")  # fmt: skip


def _tick(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    return f"{s // 60}m{s % 60:02d}" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}"
