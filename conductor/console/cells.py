"""What a state, a duration and an estimate look like in a table cell (no rich here).

One table of states serves the live view and the `plan`, `list`, `status` and `runs`
tables, so that all of them agree; ``label`` names a state as people think of it (a task
skipped because its work is already on the branch is `up to date`, not `skipped`).
"""

from __future__ import annotations

# state -> (icon, ASCII icon, style).
STATES: dict[str, tuple[str, str, str]] = {
    "pending": ("·", ".", "dim"),
    "queued": ("·", ".", "cyan"),
    "ready": ("○", "o", "cyan"),
    "running": ("▶", ">", "bold blue"),
    "validating": ("◆", "?", "magenta"),
    "awaiting_approval": ("✋", "a", "bold yellow"),
    "approved": ("✓", "v", "green"),
    "rejected": ("✗", "x", "yellow"),
    "merging": ("⇢", "m", "magenta"),
    "succeeded": ("✔", "+", "green"),
    "passed": ("✔", "+", "green"),  # a gate
    "up to date": ("✔", "=", "dim green"),
    "failed": ("✖", "x", "bold red"),
    "retrying": ("↻", "r", "yellow"),
    "blocked": ("⊘", "-", "red"),
    "cancelled": ("■", "#", "yellow"),
    "cancelling": ("■", "#", "yellow"),
    "skipped": ("↷", "~", "dim"),
    "not run": ("↷", "~", "dim"),  # a gate whose group did not succeed
    "interrupted": ("‖", "!", "yellow"),
    "paused": ("‖", "!", "yellow"),
    "rolled_back": ("↶", "<", "yellow"),
    "never run": ("·", ".", "dim"),
}
UP_TO_DATE = "up to date"  # how the reason of a task skipped as up to date begins


def label(state: str, reason: str | None = None) -> str:
    """``state`` as people say it: `up to date`, `awaiting approval`, `rolled back`."""
    if state == "skipped" and (reason or "").startswith(UP_TO_DATE):
        return UP_TO_DATE
    return state.replace("_", " ")


def state_cell(state: str, reason: str | None = None, emoji: bool = True) -> tuple[str, str]:
    """(``✔ succeeded``, its style) for a table cell."""
    shown = label(state, reason)
    icon, ascii_icon, style = STATES.get(shown, STATES.get(state, ("?", "?", "")))
    return f"{icon if emoji else ascii_icon} {shown}", style


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


def duration(seconds: float | None) -> str:
    """How long something took, in the unit that fits: 0.4s, 7s, 3m05s, 1h02m."""
    if seconds is not None and seconds < 10:
        return f"{seconds:.1f}s"
    return fmt_secs(seconds)


def estimate(seconds: float | None) -> str:
    """An estimate in the unit that fits, never `0.0h`: 30s, 45m, 2m30s, 4h, 1h30m, 3d2h."""
    if not seconds:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{m}m{r:02d}s" if r else f"{m}m"
    h, r = divmod(s, 3600)
    m = r // 60
    if h >= 48:
        d, h = divmod(h, 24)
        return f"{d}d{h}h" if h else f"{d}d"
    return f"{h}h{m:02d}m" if m else f"{h}h"
