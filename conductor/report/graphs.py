"""The workflow DAG as Mermaid (renders on GitHub) or Graphviz DOT text.

Only the edges a human wrote are drawn: explicit task ``depends_on`` plus one edge per
group dependency between the group boxes. The expanded graph (every task of a group
depending on every task of the previous one) is quadratic and unreadable. For the same
reason a fan-out task is a box of its expansions, and an edge written to or from it is
drawn once, to or from that box.

Pure string building, no networkx: ``conductor graph`` should start fast.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from conductor.spec.fanout import by_template, note
from conductor.spec.model import Workflow

# Styling per task state; states missing here (pending, ready, unknown) keep the default.
# Colours are the open-color palette: readable on both light and dark GitHub themes.
STATE_STYLES: dict[str, dict[str, str]] = {
    "succeeded": {"fill": "#d3f9d8", "stroke": "#2b8a3e", "color": "#000000"},
    "failed": {"fill": "#ffe3e3", "stroke": "#c92a2a", "color": "#000000"},
    "running": {"fill": "#d0ebff", "stroke": "#1c7ed6", "color": "#000000"},
    "validating": {"fill": "#d0ebff", "stroke": "#1c7ed6", "color": "#000000"},
    "merging": {"fill": "#d0ebff", "stroke": "#1c7ed6", "color": "#000000"},
    "retrying": {"fill": "#fff3bf", "stroke": "#f08c00", "color": "#000000"},
    "blocked": {"fill": "#e9ecef", "stroke": "#868e96", "color": "#495057"},
    "cancelled": {"fill": "#e9ecef", "stroke": "#495057", "color": "#495057"},
    "skipped": {"fill": "#f8f9fa", "stroke": "#adb5bd", "color": "#495057", "dash": "5 5"},
}

# Words the mermaid flowchart lexer treats as keywords; a node with such an id breaks
# the diagram. Compared case-insensitively to stay on the safe side of parser versions.
MERMAID_RESERVED = frozenset(
    {
        "end",
        "graph",
        "flowchart",
        "flowchart-elk",
        "subgraph",
        "style",
        "linkstyle",
        "class",
        "classdef",
        "click",
        "call",
        "href",
        "callback",
        "direction",
        "default",
        "interpolate",
        "acctitle",
        "accdescr",
        "tb",
        "td",
        "bt",
        "rl",
        "lr",
    }
)

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


@dataclass
class _Ids:
    """Allocates unique, mermaid-safe ids and remembers the mapping."""

    used: set[str]
    mapping: dict[tuple[str, str], str]

    def get(self, kind: str, name: str) -> str:
        key = (kind, name)
        if key not in self.mapping:
            self.mapping[key] = self._fresh(kind, name)
        return self.mapping[key]

    def _fresh(self, kind: str, name: str) -> str:
        base = _UNSAFE.sub("_", name) or "_"
        prefix = {"task": "t_", "fanout": "m_"}.get(kind, "g_")
        if base.lower() in MERMAID_RESERVED or not base[0].isalpha():
            base = prefix + base
        candidate, n = base, 1
        while candidate in self.used:
            # A clash (T1.a vs T1_a, or a group named like a task): disambiguate stably.
            n += 1
            candidate = f"{base}_{n}"
        self.used.add(candidate)
        return candidate


def _allocate(wf: Workflow) -> _Ids:
    ids = _Ids(set(), {})
    # Tasks first, so that they keep their own ids where possible; the whole workflow
    # is allocated whatever the selection, so an id never depends on what is drawn.
    for tid, task in wf.tasks.items():
        ids.get("task", tid)
        if task.template is not None:
            ids.get("fanout", task.template)
    for gid in _groups_in_order(wf):
        ids.get("group", gid)
    return ids


def mermaid_ids(wf: Workflow) -> dict[tuple[str, str], str]:
    """(``"task"`` | ``"group"``, name) -> the id used in the mermaid output."""
    return dict(_allocate(wf).mapping)


def mermaid_text(text: str) -> str:
    """Text safe inside a double-quoted mermaid label, via mermaid entity codes."""
    text = " ".join(text.split())  # labels are one line
    out = text.replace("#", "#35;")  # first: every other code introduces a '#'
    for raw, code in (
        ('"', "#quot;"),
        ("<", "#lt;"),
        (">", "#gt;"),
        ("&", "#amp;"),
        ("`", "#96;"),
    ):
        out = out.replace(raw, code)
    # '&' was replaced after '#'-codes were written, which contain no '&': safe.
    return out


def _groups_in_order(wf: Workflow) -> list[str]:
    names = dict.fromkeys(wf.groups)
    names.update(dict.fromkeys(t.group for t in wf.tasks.values() if t.group))
    return list(names)


def _label(name: str, title: str) -> str:
    return f"{name}: {title}" if title else name


def _shown(wf: Workflow, selected: Collection[str] | None) -> dict[str, list[str]]:
    """group (or "" for ungrouped) -> the drawn task ids, in file order."""
    out: dict[str, list[str]] = {g: [] for g in ["", *_groups_in_order(wf)]}
    wanted = None if selected is None else set(selected)  # callers may pass a list
    for tid, task in wf.tasks.items():
        if wanted is None or tid in wanted:
            out[task.group or ""].append(tid)
    return out


Node = tuple[str, str]  # ("task" | "fanout" | "group", id)


def _edges(wf: Workflow, shown: Mapping[str, list[str]]) -> Iterator[tuple[Node, Node]]:
    """(from, to) of every drawn edge, tasks first, in file order; an edge of a fan-out
    task's expansions is drawn once, from or to its box."""
    visible = {t for ts in shown.values() for t in ts}
    boxes = {wf.tasks[t].template for t in visible} - {None}
    seen: set[tuple[Node, Node]] = set()
    for tid, task in wf.tasks.items():
        if tid not in visible:
            continue
        to = ("fanout", task.template) if task.template else ("task", tid)
        for dep in task.depends_on:
            start = ("fanout", dep) if dep in boxes else ("task", dep)
            if (start[0] == "fanout" or dep in visible) and (start, to) not in seen:
                seen.add((start, to))
                yield start, to
    for gid, group in wf.groups.items():
        if shown.get(gid):
            for dep in group.depends_on:
                if shown.get(dep):
                    yield ("group", dep), ("group", gid)


def to_mermaid(
    wf: Workflow,
    states: Mapping[str, str] | None = None,
    selected: Collection[str] | None = None,
) -> str:
    """A ``flowchart TD`` with one subgraph per group; ``states`` colours the tasks."""
    ids = _allocate(wf)
    shown = _shown(wf, selected)
    lines = ["flowchart TD"]
    for gid, tids in shown.items():
        if not tids:
            continue
        indent = "    "
        if gid:
            group = wf.groups.get(gid)
            title = _label(gid, group.description if group else "")
            lines.append(f'    subgraph {ids.get("group", gid)} ["{mermaid_text(title)}"]')
            indent = "        "
        lines += _mermaid_nodes(wf, ids, tids, indent)
        if gid:
            lines.append("    end")
    for src, dst in _edges(wf, shown):
        lines.append(f"    {ids.get(*src)} --> {ids.get(*dst)}")
    if states:
        lines.extend(_mermaid_classes(states, ids, shown))
    return "\n".join(lines) + "\n"


def _mermaid_nodes(wf: Workflow, ids: _Ids, tids: list[str], indent: str) -> list[str]:
    """The nodes of ``tids``, a fan-out task's expansions in a subgraph of their own."""
    lines = []
    for template, members in by_template(wf, tids):
        inner = indent
        if template is not None:
            title = mermaid_text(f"{template} ({note(wf, template, members)})")
            lines.append(f'{indent}subgraph {ids.get("fanout", template)} ["{title}"]')
            inner = indent + "    "
        for tid in members:
            text = mermaid_text(_label(tid, wf.tasks[tid].title))
            lines.append(f'{inner}{ids.get("task", tid)}["{text}"]')
        if template is not None:
            lines.append(f"{indent}end")
    return lines


def _mermaid_classes(
    states: Mapping[str, str], ids: _Ids, shown: Mapping[str, list[str]]
) -> list[str]:
    by_state: dict[str, list[str]] = {}
    for tids in shown.values():
        for tid in tids:
            state = states.get(tid)
            if state in STATE_STYLES:
                by_state.setdefault(state, []).append(ids.get("task", tid))
    lines = []
    for state, nodes in by_state.items():
        style = STATE_STYLES[state]
        css = f"fill:{style['fill']},stroke:{style['stroke']},color:{style['color']}"
        if "dash" in style:
            css += f",stroke-dasharray: {style['dash']}"
        lines.append(f"    classDef {state} {css}")
        lines.append(f"    class {','.join(nodes)} {state}")
    return lines


# ---------------------------------------------------------------- Graphviz


def dot_quote(text: str) -> str:
    """A DOT double-quoted string (backslash and quote escaped, one line)."""
    text = " ".join(text.split())
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(
    wf: Workflow,
    states: Mapping[str, str] | None = None,
    selected: Collection[str] | None = None,
) -> str:
    """Graphviz text: ``subgraph cluster_<group>`` per group, group edges between clusters;
    a fan-out task's expansions in a cluster of their own inside it."""
    shown = _shown(wf, selected)
    lines = [
        f"digraph {dot_quote(wf.name)} {{",
        "    compound=true;",
        "    rankdir=TB;",
        '    fontname="Helvetica";',
        '    node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];',
    ]
    clusters = _clusters(shown)
    boxes = {m: ts for tids in shown.values() for m, ts in by_template(wf, tids) if m}
    fan_clusters = _clusters({f"m_{m}": [] for m in boxes}, taken=set(clusters.values()))
    for gid, tids in shown.items():
        if not tids:
            continue
        indent = "    "
        if gid:
            group = wf.groups.get(gid)
            lines.append(f"    subgraph {dot_quote(clusters[gid])} {{")
            lines.append(
                f"        label={dot_quote(_label(gid, group.description if group else ''))};"
            )
            lines.append('        style="rounded"; color="#868e96";')
            indent = "        "
        lines += _dot_nodes(wf, tids, states or {}, indent, fan_clusters)
        if gid:
            lines.append("    }")
    ends = {"group": (shown, clusters), "fanout": (boxes, fan_clusters)}
    for src, dst in _edges(wf, shown):
        lines.append(_dot_edge(src, dst, ends))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_nodes(
    wf: Workflow, tids: list[str], states: Mapping[str, str], indent: str,
    fan_clusters: Mapping[str, str],
) -> list[str]:  # fmt: skip
    lines = []
    for template, members in by_template(wf, tids):
        inner = indent
        if template is not None:
            label = dot_quote(f"{template} ({note(wf, template, members)})")
            lines.append(f"{indent}subgraph {dot_quote(fan_clusters[f'm_{template}'])} {{")
            lines.append(f'{indent}    label={label}; style="dashed"; color="#868e96";')
            inner = indent + "    "
        for tid in members:
            attrs = _dot_state_attrs(states.get(tid))
            label = dot_quote(_label(tid, wf.tasks[tid].title))
            lines.append(f"{inner}{dot_quote(tid)} [label={label}{attrs}];")
        if template is not None:
            lines.append(f"{indent}}}")
    return lines


def _dot_edge(src: Node, dst: Node, ends: Mapping[str, Any]) -> str:
    """DOT has no edge between clusters: draw it between one task of each and clip its
    ends at the cluster borders (needs compound=true)."""
    parts, clips = [], []
    for (kind, name), side, clip in ((src, -1, "ltail"), (dst, 0, "lhead")):
        if kind == "task":
            parts.append(name)
            continue
        members, names = ends[kind]
        key = f"m_{name}" if kind == "fanout" else name
        parts.append(members[name][side])
        clips.append(f"{clip}={dot_quote(names[key])}")
    bold = ", style=bold" if src[0] == "group" else ""
    attrs = f" [{', '.join(clips)}{bold}]" if clips else ""
    return f"    {dot_quote(parts[0])} -> {dot_quote(parts[1])}{attrs};"


def _clusters(shown: Mapping[str, list[str]], taken: set[str] | None = None) -> dict[str, str]:
    """group -> ``cluster_<group>`` (Graphviz draws a box only for names with that prefix);
    a suffix keeps names unique when two group ids sanitize alike (or meet ``taken``)."""
    out: dict[str, str] = {}
    used = set(taken or ())
    for gid in shown:
        base = name = f"cluster_{_UNSAFE.sub('_', gid)}"
        n = 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        out[gid] = name
        used.add(name)
    return out


def _dot_state_attrs(state: str | None) -> str:
    style = STATE_STYLES.get(state or "")
    if style is None:
        return ""
    attrs = (
        f', fillcolor="{style["fill"]}", color="{style["stroke"]}", fontcolor="{style["color"]}"'
    )
    if "dash" in style:
        attrs += ', style="rounded,filled,dashed"'
    return attrs
