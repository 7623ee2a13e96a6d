"""Memory and disk headroom: dispatch pauses when either runs short.

Thresholds come from `CONDUCTOR_MIN_FREE_MEMORY_MB` / `CONDUCTOR_MIN_FREE_DISK_MB`
(the config layer sets them from `alerts` in conductor.toml).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MIN_MEMORY_MB = 256.0
DEFAULT_MIN_DISK_MB = 500.0


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


def _threshold(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def shortage(path: Path) -> str | None:
    """A sentence naming what is short, or None when there is room."""
    disk = free_disk_mb(path)
    min_disk = _threshold("CONDUCTOR_MIN_FREE_DISK_MB", DEFAULT_MIN_DISK_MB)
    if disk < min_disk:
        return f"free disk {disk:.0f} MB < {min_disk:.0f} MB"
    mem = free_memory_mb()
    min_mem = _threshold("CONDUCTOR_MIN_FREE_MEMORY_MB", DEFAULT_MIN_MEMORY_MB)
    if mem is not None and mem < min_mem:
        return f"free memory {mem:.0f} MB < {min_mem:.0f} MB"
    return None
