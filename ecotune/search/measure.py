"""``measure(trial)``: a measurement window whose figures are recorded on an Optuna trial."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import optuna

from ecotune.energy import Measurement, Meter, get_meter

__all__ = ["measure", "MeasurementWindow"]


class MeasurementWindow:
    """What ``with measure(trial) as m`` gives: the figures, once the block has ended.

    Reading a figure inside the block (before the window has closed) is an error.
    """

    measurement: Measurement | None = None

    def __init__(self, meter: Meter) -> None:
        self._meter = meter

    def energy_so_far_j(self) -> float:
        """Energy measured since the window opened; the window stays open."""
        if self.measurement is not None:
            return self.measurement.energy_j
        return self._meter.lap().energy_j

    def _get(self) -> Measurement:
        if self.measurement is None:
            raise RuntimeError("the measurement window is still open: read its figures "
                               "after the `with measure(...)` block")
        return self.measurement

    @property
    def energy_j(self) -> float:
        """Energy of every device measured, joules."""
        return self._get().energy_j

    @property
    def duration_s(self) -> float:
        return self._get().duration_s

    @property
    def co2_g(self) -> float | None:
        return self._get().co2_g

    @property
    def meter(self) -> str:
        """Backend that produced the figures."""
        return self._get().meter

    @property
    def is_estimate(self) -> bool:
        """True where the figure is modelled rather than read from a hardware counter."""
        return self._get().is_estimate


@contextlib.contextmanager
def measure(
    trial: optuna.trial.BaseTrial | None = None,
    meter: str | Meter = "auto",
    country: str = "USA",
    pue: float = 1.0,
) -> Iterator[MeasurementWindow]:
    """Measure the enclosed work and record the figures on ``trial``'s user attributes.

    The attributes are ``energy_j``, ``cpu_energy_j``, ``gpu_energy_j``, ``ram_energy_j``
    (each device only where it was measured), ``duration_s``, ``co2_g``, ``energy_meter`` and
    ``energy_is_estimate``, ``energy_scope``, and where they apply ``energy_details``:
    ``alternatives_j`` (other backends' figures for the same window), ``sources``,
    ``cpu_share`` and ``warnings``. ``pue`` scales the emissions figure. If the work raises, the
    window is still closed and recorded.

    Example:
        >>> with measure(meter="cputime") as m:
        ...     _ = sum(range(100_000))
        >>> m.meter, m.is_estimate, m.energy_j >= 0
        ('cputime', True, True)
    """
    meter_obj = meter if isinstance(meter, Meter) else get_meter(meter, country, pue)
    window = MeasurementWindow(meter_obj)
    meter_obj.start()
    try:
        yield window
    finally:
        # Also when the work raised: the energy a failed trial spent is still spent.
        window.measurement = meter_obj.stop()
        if trial is not None:
            for key, value in window.measurement.as_attrs().items():
                trial.set_user_attr(key, value)
