"""The live terminal view of a run, and the status tables that share its states and colours.

``LiveView`` is an event sink: a call only updates a small model of the run under a lock,
so the engine never waits on the terminal. Drawing happens on rich's own refresh thread
(``Live(auto_refresh=True)``), which asks ``renderable()`` for a fresh frame a few times
a second; a slow or blocked terminal therefore stalls the view, never the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from conductor.state.store import Row

if TYPE_CHECKING:
    from rich.live import Live

    from conductor.plan.planner import Plan
    from conductor.spec.model import Workflow
    from conductor.state.events import Sink

# state -> (icon, ASCII icon, style). One table for the live view, `status` and `runs`.
STATES: dict[str, tuple[str, str, str]] = {
    "pending": ("·", ".", "dim"),
    "queued": ("·", ".", "cyan"),
    "ready": ("○", "o", "cyan"),
    "running": ("▶", ">", "bold blue"),
    "validating": ("◆", "?", "magenta"),
    "merging": ("⇢", "m", "magenta"),
    "succeeded": ("✔", "+", "green"),
    "failed": ("✖", "x", "bold red"),
    "retrying": ("↻", "r", "yellow"),
    "blocked": ("⊘", "-", "red"),
    "cancelled": ("■", "#", "yellow"),
    "cancelling": ("■", "#", "yellow"),
    "skipped": ("↷", "~", "dim"),
    "interrupted": ("‖", "!", "yellow"),
}
ACTIVE = ("running", "validating", "merging", "retrying")
TERMINAL = frozenset({"succeeded", "failed", "blocked", "cancelled", "skipped", "interrupted"})
COUNT_ORDER = ("succeeded", *ACTIVE, "pending", "failed", "blocked", "skipped", "cancelled")
RECENT = 3  # finished successes kept in the table before they collapse into the counts


def fmt_secs(seconds: float | None) -> str:
    """Compact duration for table cells: 7s, 3m05s, 1h02m."""
    if seconds is None:
        return "–"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


class Palette:
    """Icons and styles, with colour and emoji switched off on request (NO_COLOR, --no-color)."""

    def __init__(self, emoji: bool = True, no_color: bool = False) -> None:
        self.emoji = emoji
        self.no_color = no_color

    def style(self, style: str) -> str:
        # rich's own no_color drops colours but keeps bold/dim; an empty style emits nothing
        return "" if self.no_color else style

    def state(self, state: str, label: bool = True) -> Text:
        icon, ascii_icon, style = STATES.get(state, ("?", "?", ""))
        text = (icon if self.emoji else ascii_icon) + (f" {state}" if label else "")
        return Text(text, style=self.style(style))

    def bar(self, done: int, total: int, width: int = 30) -> Text:
        filled = round(width * done / total) if total else width
        full, empty = ("█", "░") if self.emoji else ("#", "-")
        text = Text()
        text.append(full * filled, style=self.style("green"))
        text.append(empty * (width - filled), style=self.style("dim"))
        return text


@dataclass
class TaskModel:
    """What the view knows about one task, built from events only."""

    id: str
    group: str | None
    wave: int
    agent: str
    timeout_s: float | None
    estimate_s: float | None
    state: str = "pending"
    attempt: int = 0
    started: float | None = None
    finished: float | None = None
    percent: float | None = None
    step: str = ""
    line: str = ""
    error: str = ""
    warning: str = ""
    order: int = 0  # when it last finished, to list the most recent first


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class RunModel:
    """The run as the events tell it: per-task state, gates, the final outcome."""

    def __init__(self, wf: Workflow, selected: Sequence[str], waves: Mapping[str, int]) -> None:
        self.name = wf.name
        self.concurrency = wf.concurrency
        specs = [wf.tasks[t] for t in selected if t in wf.tasks]
        self.tasks = {
            t.id: TaskModel(t.id, t.group, waves.get(t.id, 0), t.agent, t.timeout_s, t.estimate_s)
            for t in specs
        }
        self.wave_count = max(waves.values(), default=-1) + 1
        self.run_id = ""
        self.started: float | None = None
        self.finished: float | None = None
        self.final = ""
        self.gates: dict[str, str] = {}
        self.log_path = ""
        self.alert = ""
        self._seq = 0

    def apply(self, row: Row) -> None:
        kind, d = row["kind"], row["data"] or {}
        self.run_id = self.run_id or row["run_id"]
        task = self.tasks.get(row["task_id"] or "")
        if task is not None:
            self._task_event(task, kind, d, row["ts"])
        elif kind == "run_started":
            self.started = row["ts"]
            self.concurrency = int(d.get("concurrency") or self.concurrency)
        elif kind == "run_finished":
            self.final, self.finished = str(d.get("state", "")), row["ts"]
        elif kind.startswith("gate_"):
            self.gates[str(d.get("group"))] = kind.removeprefix("gate_")
        elif kind == "log_written":
            self.log_path = str(d.get("path", ""))
        elif kind == "system_alert":
            self.alert = str(d.get("message") or d.get("alert") or "system alert")

    def _task_event(self, t: TaskModel, kind: str, d: Mapping[str, Any], ts: float) -> None:
        if kind == "task_started":
            t.state, t.started, t.finished = "running", ts, None
            t.attempt = int(d.get("attempt") or t.attempt + 1)
            t.agent = str(d.get("agent") or t.agent)
            t.percent, t.step, t.line, t.warning = None, "", "", ""
        elif kind in ("task_progress", "task_output"):
            t.percent = _num(d["percent"]) if "percent" in d else t.percent
            t.step = str(d.get("step") or d.get("message") or t.step)
            t.line = str(d.get("line") or t.line)
        elif kind == "task_state":  # validating / merging, if the engine reports them
            t.state = str(d.get("state") or t.state)
        elif kind.startswith("validation_"):
            t.state = "validating"
        elif kind == "merged":
            t.state = "merging"
        elif kind == "task_warning":
            t.warning = str(d.get("warning", ""))
        elif kind == "task_retrying":
            t.state, t.error = "retrying", str(d.get("error") or "")
        else:
            self._task_end(t, kind, d, ts)

    def _task_end(self, t: TaskModel, kind: str, d: Mapping[str, Any], ts: float) -> None:
        ends = {
            "task_completed": ("succeeded", ""),
            "task_failed": ("failed", str(d.get("error") or "failed")),
            "task_blocked": ("blocked", f"blocked by {d.get('cause')}"),
            "task_skipped": ("skipped", str(d.get("reason") or "")),
        }
        if kind not in ends:
            return
        t.state, t.error = ends[kind]
        t.finished = ts
        if kind == "task_completed":
            t.percent = 100.0
        self._seq += 1
        t.order = self._seq

    # -- derived numbers ----------------------------------------------------------

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tasks.values():
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def current_wave(self) -> int | None:
        open_waves = [t.wave for t in self.tasks.values() if t.state not in TERMINAL]
        return min(open_waves) if open_waves else None

    def active_groups(self) -> list[str]:
        groups = (t.group for t in self.tasks.values() if t.state in ACTIVE and t.group)
        return sorted(set(groups))

    def eta(self, now: float) -> float | None:
        """Seconds left: per wave, the longer of its longest task and its work spread over
        the concurrency. Estimates are scaled by how long estimated tasks really took;
        unestimated tasks are expected to take the mean observed duration."""
        done = [
            t for t in self.tasks.values() if t.state == "succeeded" and t.started and t.finished
        ]
        took = {t.id: (t.finished or 0.0) - (t.started or 0.0) for t in done}
        mean = sum(took.values()) / len(took) if took else None
        est = [(t.estimate_s, took[t.id]) for t in done if t.estimate_s]
        ratio = sum(o for _, o in est) / sum(e for e, _ in est) if est else 1.0
        waves: dict[int, list[float]] = {}
        for t in self.tasks.values():
            if t.state in TERMINAL:
                continue
            expect = t.estimate_s * ratio if t.estimate_s else mean
            if expect is None:
                return None
            spent = now - t.started if t.state in ACTIVE and t.started else 0.0
            # an overdue task is not done either: keep a sliver of it in the estimate
            waves.setdefault(t.wave, []).append(max(expect - spent, 0.1 * expect))
        conc = max(1, self.concurrency)
        return sum(max(max(r), sum(r) / conc) for r in waves.values())


class LiveView:
    """A rich live display of one run; a Sink plus ``start()`` / ``stop()``."""

    def __init__(
        self,
        console: Console,
        wf: Workflow,
        selected: Sequence[str],
        waves: Mapping[str, int],
        *,
        emoji: bool = True,
        no_color: bool = False,
        verbose: bool = False,
        refresh_per_second: float = 4.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.console = console
        self.model = RunModel(wf, selected, waves)
        self.palette = Palette(emoji, no_color or bool(console.no_color))
        self.verbose = verbose
        self.rate = refresh_per_second
        self.clock = clock
        self.sink_errors = 0
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __call__(self, row: Row) -> None:
        try:
            with self._lock:
                self.model.apply(row)
        except Exception:  # a display bug must never fail the run that feeds it
            self.sink_errors += 1

    def start(self) -> None:
        from rich.live import Live

        self._live = Live(
            console=self.console,
            get_renderable=self.renderable,
            auto_refresh=True,
            refresh_per_second=self.rate,
            transient=False,
        )
        self._live.start(refresh=True)

    def stop(self) -> None:
        """Draw the final frame and give the terminal back."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __enter__(self) -> LiveView:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def renderable(self) -> RenderableType:
        """One frame; called by rich's refresh thread (and by tests)."""
        with self._lock:
            now = self.clock()
            parts: list[RenderableType] = [self._header(now), self._progress(now)]
            parts.append(self._counts())
            table = self._table(now)
            if table.row_count:
                parts.append(table)
            parts.extend(self._footer())
            return Group(*parts)

    # -- pieces of a frame -------------------------------------------------------

    def _header(self, now: float) -> Text:
        m, p = self.model, self.palette
        text = Text()
        text.append(f"conductor · {m.name}", style=p.style("bold"))
        if m.run_id:
            text.append(f" · run {m.run_id}")
        wave = m.current_wave()
        if m.final:
            text.append(" · ")
            text.append_text(p.state(m.final))
        elif wave is not None and m.wave_count:
            text.append(f" · wave {wave + 1}/{m.wave_count}")
            groups = m.active_groups()
            if groups:
                text.append(" · " + ", ".join(groups), style=p.style("cyan"))
        return text

    def _progress(self, now: float) -> Text:
        m, p = self.model, self.palette
        total = len(m.tasks)
        done = sum(1 for t in m.tasks.values() if t.state in TERMINAL)
        text = p.bar(done, total)
        start = m.started or now
        elapsed = (m.finished or now) - start
        text.append(f" {done}/{total} done · {fmt_secs(elapsed)} elapsed")
        if not m.final:
            eta = m.eta(now)
            text.append(" · ETA " + (f"~{fmt_secs(eta)}" if eta is not None else "–"))
        return text

    def _counts(self) -> Text:
        counts, p = self.model.counts(), self.palette
        text = Text()
        for state in COUNT_ORDER:
            if counts.get(state):
                if text:
                    text.append("  ")
                text.append_text(p.state(state, label=False))
                text.append(f" {counts[state]} {state}")
        return text

    def _rows(self) -> tuple[list[TaskModel], int]:
        """Active tasks first, then every failure, then the latest successes."""
        ts = self.model.tasks.values()
        active = sorted((t for t in ts if t.state in ACTIVE), key=lambda t: t.started or 0.0)
        failed = sorted((t for t in ts if t.state == "failed"), key=lambda t: t.order)
        done = sorted((t for t in ts if t.state == "succeeded"), key=lambda t: -t.order)
        recent = done if self.verbose else done[:RECENT]
        rows = [*active, *failed, *recent]
        room = max(6, self.console.size.height - 8)
        return rows[:room], max(0, len(rows) - room)

    def _table(self, now: float) -> Table:
        p = self.palette
        table = Table(box=None, header_style=p.style("bold"), pad_edge=False, expand=False)
        widths = {"task": 28, "agent": 12, "progress": 30}
        for name in ("state", "task", "agent", "try", "time", "progress", "detail"):
            table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=widths.get(name))
        rows, hidden = self._rows()
        for t in rows:
            cells = (p.state(t.state), t.id, t.agent, str(t.attempt or ""), self._time(t, now))
            table.add_row(*cells, self._step(t), self._detail(t))
        if hidden:
            table.add_row("", Text(f"… {hidden} more", style=p.style("dim")))
        return table

    def _time(self, t: TaskModel, now: float) -> str:
        if t.started is None:
            return ""
        took = fmt_secs((t.finished or now) - t.started)
        if t.state in ACTIVE and t.timeout_s:
            return f"{took}/{fmt_secs(t.timeout_s)}"
        return took

    def _step(self, t: TaskModel) -> str:
        pct = f"{t.percent:.0f}% " if t.percent is not None else ""
        return (pct + t.step).strip()

    def _detail(self, t: TaskModel) -> Text:
        p = self.palette
        if t.state in ("failed", "retrying") and t.error:
            first = t.error.strip().splitlines()[0] if t.error.strip() else t.error
            style = "red" if t.state == "failed" else "yellow"
            return Text(first, style=p.style(style))
        if t.warning and t.state in ACTIVE:
            return Text(f"warning: {t.warning}", style=p.style("yellow"))
        return Text(t.line, style=p.style("dim"))

    def _footer(self) -> list[RenderableType]:
        m, p = self.model, self.palette
        out: list[RenderableType] = []
        for group, state in m.gates.items():
            style = {"passed": "green", "failed": "bold red"}.get(state, "magenta")
            out.append(Text(f"gate {group}: {state}", style=p.style(style)))
        if m.alert:
            out.append(Text(f"alert: {m.alert}", style=p.style("yellow")))
        if m.log_path:
            out.append(Text(f"execution log: {m.log_path}"))
        return out


# -- status and runs tables -------------------------------------------------------


def render_status_table(
    doc: Mapping[str, Any], *, emoji: bool = True, no_color: bool = False
) -> RenderableType:
    """`conductor status`: the run line, counts and one row per task (`status_doc` shape)."""
    p = Palette(emoji, no_color)
    run = doc["run"]
    head = Text()
    head.append(f"run {run['id']}  {run.get('name') or ''}  ", style=p.style("bold"))
    head.append_text(p.state(str(run["state"])))
    head.append(f"  {fmt_secs(run.get('elapsed_s'))}")
    counts = Text("  ".join(f"{n} {s}" for s, n in sorted((run.get("counts") or {}).items())))
    table = Table(box=None, header_style=p.style("bold"), pad_edge=False)
    for col in ("state", "task", "group", "agent", "try", "time", "progress", "detail"):
        table.add_column(col, no_wrap=True, overflow="ellipsis")
    for t in doc["tasks"]:
        pct = f"{t['progress']:.0f}% " if isinstance(t.get("progress"), (int, float)) else ""
        detail = t.get("error") or ""
        table.add_row(
            p.state(str(t["state"])),
            t["id"],
            t.get("group") or "",
            t.get("agent") or "",
            str(t.get("attempts") or ""),
            fmt_secs(t.get("elapsed_s")) if t.get("elapsed_s") is not None else "",
            (pct + (t.get("step") or "")).strip(),
            Text(detail, style=p.style("red") if t["state"] == "failed" else ""),
        )
    return Group(head, counts, table)


def render_runs_table(
    runs: Sequence[Mapping[str, Any]], *, emoji: bool = True, no_color: bool = False
) -> RenderableType:
    """`conductor runs`: one row per run (the `run` part of `status_doc`)."""
    p = Palette(emoji, no_color)
    table = Table(box=None, header_style=p.style("bold"), pad_edge=False)
    for col in ("run", "workflow", "state", "time", "tasks"):
        table.add_column(col, no_wrap=True)
    for r in runs:
        counts = ", ".join(f"{n} {s}" for s, n in sorted((r.get("counts") or {}).items()))
        cells = (
            r["id"],
            r.get("name") or "",
            p.state(str(r["state"])),
            fmt_secs(r.get("elapsed_s")),
        )
        table.add_row(*cells, counts)
    return table


# -- choosing the display -------------------------------------------------------------


def make_console(color: str = "auto", file: TextIO | None = None) -> Console:
    """A console for ``color`` = auto | always | never (rich honours NO_COLOR itself)."""
    if color == "always":
        return Console(file=file, force_terminal=True)
    if color == "never":
        return Console(file=file, no_color=True)
    return Console(file=file)


@contextmanager
def display(
    plan: Plan,
    *,
    as_json: bool = False,
    color: str = "auto",
    emoji: bool = True,
    verbosity: str = "normal",
    file: TextIO | None = None,
) -> Iterator[Sink]:
    """The sink `run` and `demo` feed: JSON lines, the live view on a terminal, else plain
    timestamped lines. The live view is started on entry and stopped on exit."""
    from conductor.console.plain import JsonSink, PlainSink

    if as_json:
        yield JsonSink(file)
        return
    console = make_console(color, file)
    quiet, verbose = verbosity == "quiet", verbosity == "verbose"
    if quiet or not console.is_terminal or console.is_dumb_terminal:
        yield PlainSink(file, quiet=quiet, verbose=verbose)
        return
    waves = {t: plan.wave_of(t) for t in plan.selected}
    view = LiveView(
        console,
        plan.workflow,
        plan.selected,
        waves,
        emoji=emoji,
        no_color=color == "never",
        verbose=verbose,
    )
    with view:
        yield view
