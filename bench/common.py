"""Helpers shared by the bench scripts: statistics and /proc readings."""

from __future__ import annotations

import statistics
from pathlib import Path


def stats(values: list[float]) -> tuple[float, float, float]:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return ms[0], statistics.median(ms), p95


def cpu_ticks(pids: list[int], children: bool = False) -> int:
    """CPU clock ticks used by these processes (and, with `children`, by the children they
    reaped: the scripts they ran)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            if children:
                total += int(fields[13]) + int(fields[14])  # cutime, cstime
        except (OSError, IndexError):
            pass
    return total


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total
