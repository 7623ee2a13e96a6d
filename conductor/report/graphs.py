"""The workflow DAG as Mermaid (renders on GitHub) or Graphviz DOT text.

Only the edges a human wrote are drawn: explicit task ``depends_on`` plus one edge per
group dependency between the group boxes. The expanded graph (every task of a group
depending on every task of the previous one) is quadratic and unreadable.

Pure string building, no networkx: ``conductor graph`` should start fast.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

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
        prefix = "t_" if kind == "task" else "g_"
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
    for tid in wf.tasks:
        ids.get("task", tid)
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


def _edges(wf: Workflow, shown: Mapping[str, list[str]]) -> Iterator[tuple[str, str, str]]:
    """("task" | "group", from, to) for every drawn edge, tasks first, in file order."""
    visible = {t for ts in shown.values() for t in ts}
    for tid in wf.tasks:
        if tid in visible:
            for dep in wf.tasks[tid].depends_on:
                if dep in visible:
                    yield "task", dep, tid
    for gid, group in wf.groups.items():
        if shown.get(gid):
            for dep in group.depends_on:
                if shown.get(dep):
                    yield "group", dep, gid


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
        for tid in tids:
            text = mermaid_text(_label(tid, wf.tasks[tid].title))
            lines.append(f'{indent}{ids.get("task", tid)}["{text}"]')
        if gid:
            lines.append("    end")
    for kind, src, dst in _edges(wf, shown):
        lines.append(f"    {ids.get(kind, src)} --> {ids.get(kind, dst)}")
    if states:
        lines.extend(_mermaid_classes(states, ids, shown))
    return "\n".join(lines) + "\n"


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
    """Graphviz text: ``subgraph cluster_<group>`` per group, group edges between clusters."""
    shown = _shown(wf, selected)
    lines = [
        f"digraph {dot_quote(wf.name)} {{",
        "    compound=true;",
        "    rankdir=TB;",
        '    fontname="Helvetica";',
        '    node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];',
    ]
    clusters = _clusters(shown)
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
        for tid in tids:
            attrs = _dot_state_attrs((states or {}).get(tid))
            label = dot_quote(_label(tid, wf.tasks[tid].title))
            lines.append(f"{indent}{dot_quote(tid)} [label={label}{attrs}];")
        if gid:
            lines.append("    }")
    for kind, src, dst in _edges(wf, shown):
        if kind == "task":
            lines.append(f"    {dot_quote(src)} -> {dot_quote(dst)};")
        else:
            # DOT has no cluster-to-cluster edge: draw between one task of each and
            # clip the ends at the cluster borders (needs compound=true).
            a, b = shown[src][-1], shown[dst][0]
            clip = f"ltail={dot_quote(clusters[src])}, lhead={dot_quote(clusters[dst])}"
            lines.append(f"    {dot_quote(a)} -> {dot_quote(b)} [{clip}, style=bold];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _clusters(shown: Mapping[str, list[str]]) -> dict[str, str]:
    """group -> ``cluster_<group>`` (Graphviz draws a box only for names with that prefix);
    a suffix keeps names unique when two group ids sanitize alike."""
    out: dict[str, str] = {}
    for gid in shown:
        base = name = f"cluster_{_UNSAFE.sub('_', gid)}"
        n = 1
        while name in out.values():
            n += 1
            name = f"{base}_{n}"
        out[gid] = name
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
