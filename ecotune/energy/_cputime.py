"""The last-resort meter: an estimate from this process's CPU time.

energy = CPU seconds used by this process (all its threads) x an assumed power per busy
core. It measures nothing: the figure is always labelled an estimate, and only the CPU is
covered (RAM and GPU stay None, "not measured").
"""

from __future__ import annotations

import time

from ecotune.energy._base import Availability, Measurement, Meter

__all__ = ["CpuTimeMeter", "cputime_status"]

#: Assumed power of one fully busy core, watts: a 150 W server CPU shared by 16 cores.
DEFAULT_WATTS_PER_CORE = 9.4


def cputime_status() -> Availability:
    """Always available: it needs only the process's own CPU clock."""
    return Availability(True, "process CPU time x an assumed power per core (an estimate)")


class CpuTimeMeter(Meter):
    """Estimate energy as process CPU seconds x ``watts_per_core``.

    Example:
        >>> meter = CpuTimeMeter(watts_per_core=10.0)
        >>> with meter.window() as w:
        ...     _ = sum(i * i for i in range(100_000))
        >>> w.measurement.meter, w.measurement.is_estimate, w.measurement.ram_j
        ('cputime', True, None)
    """

    name = "cputime"
    devices = ("cpu",)

    def __init__(self, watts_per_core: float = DEFAULT_WATTS_PER_CORE) -> None:
        super().__init__()
        if watts_per_core <= 0:
            raise ValueError(f"watts_per_core must be > 0 (got {watts_per_core})")
        self.watts_per_core = watts_per_core
        self._t0_s = 0.0
        self._cpu0_s = 0.0

    def _start(self) -> None:
        self._cpu0_s = time.process_time()
        self._t0_s = time.perf_counter()

    def _stop(self) -> Measurement:
        return self._reading()

    def _lap(self, exact: bool = False) -> Measurement:
        # A free-running clock: a plain read, no stop and restart (a reading per epoch).
        return self._reading()

    def _reading(self) -> Measurement:
        """The backend window since its start."""
        duration_s = time.perf_counter() - self._t0_s
        cpu_j = (time.process_time() - self._cpu0_s) * self.watts_per_core
        return Measurement(
            duration_s=duration_s,
            energy_j=cpu_j,
            cpu_j=cpu_j,
            gpu_j=None,
            ram_j=None,
            co2_g=None,
            meter=self.name,
            is_estimate=True,
            scope="process",
            sources={"cpu": self.name},
        )
