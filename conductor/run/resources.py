"""Memory and disk headroom: dispatch pauses when either runs short.

The thresholds are `alerts.min_free_memory_mb` / `alerts.min_free_disk_mb` of the config
(or the `CONDUCTOR_MIN_FREE_*_MB` variables), handed over in the run's settings.
"""

from __future__ import annotations

import os
from pathlib import Path


def free_memory_mb() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def free_disk_mb(path: Path) -> float:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / 1024 / 1024


def shortage(path: Path, min_memory_mb: float, min_disk_mb: float) -> str | None:
    """A sentence naming what is short, or None when there is room."""
    disk = free_disk_mb(path)
    if disk < min_disk_mb:
        return f"free disk {disk:.0f} MB < {min_disk_mb:.0f} MB"
    mem = free_memory_mb()
    if mem is not None and mem < min_memory_mb:
        return f"free memory {mem:.0f} MB < {min_memory_mb:.0f} MB"
    return None
