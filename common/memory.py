"""What a run's process holds and how long it took to start, read from Linux's /proc (None elsewhere)."""

from __future__ import annotations

import os


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mb() -> float | None:
    """Resident memory of this process now (VmRSS), in MB."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024


def peak_rss_mb() -> float | None:
    """The most this process has held resident so far (VmHWM, the high-water mark), in MB."""
    kb = _status_kb("VmHWM")
    return None if kb is None else kb / 1024


def process_age_s() -> float | None:
    """Seconds since this process started: the interpreter's start-up and every import so far."""
    try:
        with open("/proc/self/stat") as f:
            # the command name (field 2) may hold spaces; the fields after its ")" are plain
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime_s = float(f.read().split()[0])
        start_ticks = int(fields[19])  # field 22, starttime, in clock ticks since boot
        return uptime_s - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
