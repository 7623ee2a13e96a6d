"""The live terminal view of a run, and ``display``, which picks the sink a run reports to.

``LiveView`` is an event sink: a call only updates a small model of the run (``runmodel``)
under a lock, so the engine never waits on the terminal. Drawing happens on rich's own
refresh thread (``Live(auto_refresh=True)``), which asks ``renderable()`` for a fresh
frame a few times a second; a slow or blocked terminal therefore stalls the view, never
the run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from conductor.console.cells import fmt_secs
from conductor.console.palette import Palette
from conductor.console.poolboard import pool_lines
from conductor.console.runmodel import ACTIVE, HELD_BY, TERMINAL, RunModel, TaskModel
from conductor.report.failure import gate_lines
from conductor.report.gaterows import GateRow
from conductor.report.rundata import fmt_usd
from conductor.report.spend import fmt_tokens
from conductor.spec.fanout import suffix
from conductor.state.endings import LABELS
from conductor.state.records import EventRow

if TYPE_CHECKING:
    from rich.live import Live

    from conductor.spec.model import Workflow

COUNT_ORDER = ("succeeded", "running", "validating", "merging", "awaiting_approval", "retrying",
               "pending", "failed", "blocked", "skipped", "cancelled")  # fmt: skip
HELD = frozenset(HELD_BY.values())
WAITING = frozenset({"pending", "ready", "queued"})
RECENT = 3  # finished successes kept in the table before they collapse into the counts


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

    def __call__(self, row: EventRow) -> None:
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
        """Draw the final frame and give the terminal back; then the execution log's path,
        whole and unwrapped by rich (the terminal wraps it), so that it copies as one."""
        if self._live is not None:
            self._live.stop()
            self._live = None
            if self.model.log_path:
                self.console.print(f"execution log: {_near(self.model.log_path)}",
                                   soft_wrap=True, markup=False, highlight=False)  # fmt: skip

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
            m = self.model
            parts += pool_lines(m.pools.rows(m.tasks, m.concurrency), self.palette,
                                m.pools.deadlock)  # fmt: skip
            table, more = self._table(now)
            if table.row_count:
                parts.append(table)
            if more:  # a row is never dropped without a word
                parts.append(Text(more, style=self.palette.style("dim")))
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
        text.append(self._spent())
        return text

    def _spent(self) -> str:
        """The run's running total of what its agents reported ('' until one did)."""
        s = self.model.spend
        parts = [fmt_usd(s.cost_usd) if s.cost_usd is not None else ""]
        if s.tokens_in is not None or s.tokens_out is not None:
            parts.append(f"{fmt_tokens(s.tokens_in or 0)} in / {fmt_tokens(s.tokens_out or 0)}"
                         " out tokens")  # fmt: skip
        return "".join(f" · {p}" for p in parts if p)

    def _counts(self) -> Text:
        counts, p = self.model.counts(), self.palette
        text = Text()
        for state in COUNT_ORDER:
            if counts.get(state):
                if text:
                    text.append("  ")
                text.append_text(p.state(state, label=False))
                text.append(f" {counts[state]} {LABELS.get(state, state)}")
        return text

    def _rows(self) -> tuple[list[TaskModel], str]:
        """Active tasks first, then every failure, then the latest successes (all of them
        in the final frame), as many as fit; and what was left out, counted by state:
        a row is never dropped without a word."""
        ts = self.model.tasks.values()
        active = sorted((t for t in ts if t.state in ACTIVE), key=lambda t: t.started or 0.0)
        held = [t for t in ts if t.state in HELD]  # waiting for a person: always in view
        failed = sorted((t for t in ts if t.state == "failed" or _decided(t)),
                        key=lambda t: t.order)  # fmt: skip
        done = sorted((t for t in ts if t.state == "succeeded"), key=lambda t: -t.order)
        recent = done if self.verbose or self.model.final else done[:RECENT]
        room = max(6, self.console.size.height - 8 - len(self._footer()) - len(self.model.gates))
        rows = [*active, *held, *failed, *recent][:room]
        shown = {t.id for t in rows}
        # while the run goes on, the waiting tasks are in the counts line, not "more"
        left = [t for t in ts if t.id not in shown
                and (self.model.final or t.state not in WAITING)]  # fmt: skip
        return rows, _more(left)

    def _table(self, now: float) -> tuple[Table, str]:
        p = self.palette
        table = Table(box=None, header_style=p.style("bold"), pad_edge=False, expand=False)
        widths = {"task": 28, "agent": 12, "progress": 30}
        least = {"state": 12, "agent": 5, "try": 3, "time": 5}  # short cells stay readable
        for name in ("state", "task", "agent", "try", "time", "progress", "detail"):
            table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=widths.get(name),
                             min_width=least.get(name))  # fmt: skip
        rows, more = self._rows()
        for t in _under_templates(rows):
            if isinstance(t, str):  # a fan-out task's heading, its expansions beneath
                table.add_row("", Text(t, style=p.style("bold")), *[""] * 4, self._fanout(t))
                continue
            # Text, not str: rich would read `[m=a]` as markup
            shown = Text(f"  {suffix(t.id, t.template)}" if t.template else t.id)
            cells = (p.state(t.state), shown, t.agent, str(t.attempt or ""), self._time(t, now))
            table.add_row(*cells, self._step(t), self._detail(t))
        for g in self.model.gates.values():
            if g.state != "pending" or self.model.final:  # a gate is a row once it ran
                table.add_row(*self._gate_cells(g, now))
        return table, more

    def _gate_cells(self, g: GateRow, now: float) -> tuple[Text, Text, str, str, str, str, Text]:
        """A group's gate as a row: its state, how long it took, what failed."""
        p = self.palette
        took = fmt_secs((g.finished or now) - g.started) if g.started is not None else ""
        said = gate_lines(g.output)[-1:]
        detail = Text(said[0] if said else "", style=p.style("red"))
        return (p.state(g.state), Text(f"gate {g.group}"), "", "", took, "", detail)

    def _fanout(self, template: str) -> Text:
        """How far all expansions of ``template`` are: ``2/6 done · 2 running``."""
        mine = [t for t in self.model.tasks.values() if t.template == template]
        done = sum(1 for t in mine if t.state in TERMINAL)
        running = sum(1 for t in mine if t.state in ACTIVE)
        text = f"{done}/{len(mine)} done" + (f" · {running} running" if running else "")
        return Text(text, style=self.palette.style("dim"))

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
        if t.state in ("skipped", "blocked") and t.error:  # why it will not run
            return Text(t.error, style=p.style("dim"))
        if t.state in ("failed", "retrying") and t.error:
            first = t.error.strip().splitlines()[0] if t.error.strip() else t.error
            style = "red" if t.state == "failed" else "yellow"
            return Text(first, style=p.style(style))
        if t.warning and t.state in ACTIVE:
            return Text(f"warning: {t.warning}", style=p.style("yellow"))
        if t.state == "awaiting_approval":
            how = f"conductor approve|reject {self.model.run_id} {t.id}"
            return Text(f"awaiting approval: {how}", style=p.style("yellow"))
        if t.state == "succeeded" and t.merged:
            return Text(f"merged {t.merged}", style=p.style("dim"))
        return Text(t.line, style=p.style("dim"))

    def _footer(self) -> list[RenderableType]:
        m, p = self.model, self.palette
        out: list[RenderableType] = []
        if m.alert:
            out.append(Text(f"alert: {m.alert}", style=p.style("yellow")))
        out.extend(Text(line) for line in m.settled)
        if m.log_path and not m.final:  # the final one is printed after the frame (stop)
            out.append(Text(f"execution log: {_near(m.log_path)}", no_wrap=True,
                            overflow="ellipsis"))  # fmt: skip
        return out


def _more(left: Sequence[TaskModel]) -> str:
    """``… 5 more: 4 succeeded, 1 up to date`` for the tasks without a row."""
    if not left:
        return ""
    labels: dict[str, int] = {}
    for t in left:
        label = "up to date" if t.error.startswith("up to date") else LABELS.get(t.state, t.state)
        labels[label] = labels.get(label, 0) + 1
    return f"… {len(left)} more: " + ", ".join(f"{n} {s}" for s, n in labels.items())


def _decided(t: TaskModel) -> bool:
    """Skipped by its `when:` or trigger rule, or blocked: shown with why (a task skipped
    as up to date did its work in an earlier run and is only counted)."""
    return t.state in ("skipped", "blocked") and not t.error.startswith("up to date")


def _near(path: str) -> str:
    """``path`` relative to the working directory when it lies beneath it (shorter)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


def _under_templates(rows: list[TaskModel]) -> list[TaskModel | str]:
    """``rows`` with the expansions of one fan-out task together, under its id."""
    out: list[TaskModel | str] = []
    placed: dict[str, int] = {}  # template -> index after its last row so far
    for t in rows:
        if t.template is None:
            out.append(t)
        elif t.template in placed:
            at = placed[t.template]
            out.insert(at, t)
            placed = {m: i + (i >= at) for m, i in placed.items()}
            placed[t.template] = at + 1
        else:
            out += [t.template, t]
            placed[t.template] = len(out)
    return out
