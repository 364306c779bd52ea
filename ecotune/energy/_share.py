"""This process's share of the machine's busy CPU time over a window.

Whole-machine counters (RAPL) see every process. When several trials run at once on one
machine, each worker's CPU energy is attributed by its share of the CPU time spent over the
window: ``process CPU seconds / machine busy CPU seconds``. The machine's busy time is read
from ``/proc/stat`` (every CPU's user, nice, system, irq, softirq and steal jiffies; idle
and iowait are not busy). Where ``/proc/stat`` cannot be read the share is unknown (None)
and the figure stays whole-machine, with a warning.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple

__all__ = ["CpuTimes", "CpuShareClock", "cpu_share"]

# Columns of the "cpu" line of /proc/stat that count as busy: user nice system [idle iowait]
# irq softirq steal (guest time is already inside user/nice).
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)


class CpuTimes(NamedTuple):
    """CPU seconds at one instant: this process (all threads), and the whole machine busy."""

    process_s: float
    machine_s: float | None


def cpu_share(start: CpuTimes, end: CpuTimes) -> float | None:
    """Fraction of the machine's busy CPU time this process used between two readings.

    Clamped to [0, 1] (the two clocks tick at different resolutions); None when the machine
    time is unknown or did not advance.

    Example:
        >>> cpu_share(CpuTimes(1.0, 10.0), CpuTimes(2.0, 14.0))
        0.25
        >>> cpu_share(CpuTimes(1.0, None), CpuTimes(2.0, None)) is None
        True
    """
    if start.machine_s is None or end.machine_s is None:
        return None
    machine_s = end.machine_s - start.machine_s
    if machine_s <= 0:
        return None
    return min(1.0, max(0.0, (end.process_s - start.process_s) / machine_s))


class CpuShareClock:
    """Reads :class:`CpuTimes`; ``proc_stat`` is a constructor argument so tests can fake it.

    Example:
        >>> times = CpuShareClock().read()
        >>> times.process_s > 0
        True
    """

    def __init__(self, proc_stat: str | Path = "/proc/stat") -> None:
        self.proc_stat = Path(proc_stat)
        try:
            self._tick_s = 1.0 / os.sysconf("SC_CLK_TCK")
        except (ValueError, OSError, AttributeError):
            self._tick_s = 0.01

    def machine_busy_s(self) -> float | None:
        """Busy CPU seconds of the whole machine since boot; None where unreadable."""
        try:
            with open(self.proc_stat, encoding="ascii") as file:
                fields = file.readline().split()
        except OSError:
            return None
        if not fields or fields[0] != "cpu":
            return None
        try:
            values = [int(v) for v in fields[1:]]
            return sum(values[i] for i in _BUSY_COLUMNS if i < len(values)) * self._tick_s
        except ValueError:
            return None

    def read(self) -> CpuTimes:
        return CpuTimes(process_s=time.process_time(), machine_s=self.machine_busy_s())
