"""The meter interface: a meter measures a window of work and returns a :class:`Measurement`.

Calling sequence (as in Zeus): ``meter.start()`` opens a window, ``meter.stop()`` closes it
and returns a frozen record. ``with meter.window() as w: ...`` does both; ``w.measurement``
is set when the block ends. Opening a second window before closing the first, or closing
one that was never opened, is an error that says so.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Iterator

__all__ = ["Measurement", "Meter", "MeterError", "Window"]


class MeterError(RuntimeError):
    """A meter cannot do what was asked (not available here, window misuse, vendor error)."""


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Energy and time of one window of work.

    ``None`` means "not measured" (never 0). ``energy_j`` covers every device the meter
    measured (``cpu_j + gpu_j + ram_j`` over those that are not None).
    """

    duration_s: float
    energy_j: float
    cpu_j: float | None
    gpu_j: float | None
    ram_j: float | None
    co2_g: float | None
    meter: str
    is_estimate: bool

    def as_attrs(self) -> dict[str, float | str | bool]:
        """The record as flat, JSON-safe key/values (the names trials store them under).

        Devices not measured are left out rather than stored as None.
        """
        attrs = {
            "energy_j": self.energy_j,
            "cpu_energy_j": self.cpu_j,
            "gpu_energy_j": self.gpu_j,
            "ram_energy_j": self.ram_j,
            "duration_s": self.duration_s,
            "co2_g": self.co2_g,
            "energy_meter": self.meter,
            "energy_is_estimate": self.is_estimate,
        }
        return {key: value for key, value in attrs.items() if value is not None}


class Window:
    """Handle of an open window; ``measurement`` is filled in when the window closes."""

    measurement: Measurement | None = None


class Meter(abc.ABC):
    """Base class of every energy backend.

    Subclasses implement :meth:`_start` and :meth:`_stop`; the base class enforces the
    open/close discipline.
    """

    #: Short backend name recorded with every measurement.
    name: str = "base"

    def __init__(self) -> None:
        self._open = False

    def start(self) -> None:
        """Open a measurement window."""
        if self._open:
            raise MeterError(f"{self.name} meter: a window is already open; stop it first")
        self._start()
        self._open = True

    def stop(self) -> Measurement:
        """Close the open window and return what it measured."""
        if not self._open:
            raise MeterError(f"{self.name} meter: stop() called with no open window")
        self._open = False
        return self._stop()

    @contextlib.contextmanager
    def window(self) -> Iterator[Window]:
        """Measure the enclosed block: ``with meter.window() as w: ...; w.measurement``."""
        handle = Window()
        self.start()
        try:
            yield handle
        finally:
            # Close the window even when the work failed, so the meter stays usable.
            handle.measurement = self.stop()

    @abc.abstractmethod
    def _start(self) -> None: ...

    @abc.abstractmethod
    def _stop(self) -> Measurement: ...
