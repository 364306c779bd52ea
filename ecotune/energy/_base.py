"""The meter interface: a meter measures a window of work and returns a :class:`Measurement`.

Calling sequence (as in Zeus): ``meter.start()`` opens a window, ``meter.stop()`` closes it
and returns a frozen record; ``meter.lap()`` returns the record of the window so far and
keeps it open (per-epoch energy during training). ``with meter.window() as w: ...`` opens
and closes one; ``w.measurement`` is set when the block ends. Opening a second window
before closing the first, or closing one that was never opened, is an error that says so.
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

    def __add__(self, other: Measurement) -> Measurement:
        """Two consecutive windows as one: figures add, None where neither measured."""
        if not isinstance(other, Measurement):
            return NotImplemented

        def add(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else (a or 0.0) + (b or 0.0)

        return Measurement(
            duration_s=self.duration_s + other.duration_s,
            energy_j=self.energy_j + other.energy_j,
            cpu_j=add(self.cpu_j, other.cpu_j),
            gpu_j=add(self.gpu_j, other.gpu_j),
            ram_j=add(self.ram_j, other.ram_j),
            co2_g=add(self.co2_g, other.co2_g),
            meter=self.meter if self.meter == other.meter else f"{self.meter}+{other.meter}",
            is_estimate=self.is_estimate or other.is_estimate,
        )


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
        self._done: Measurement | None = None  # laps of the open window already closed

    def start(self) -> None:
        """Open a measurement window."""
        if self._open:
            raise MeterError(f"{self.name} meter: a window is already open; stop it first")
        self._start()
        self._open = True
        self._done = None

    def stop(self) -> Measurement:
        """Close the open window and return what it measured."""
        if not self._open:
            raise MeterError(f"{self.name} meter: stop() called with no open window")
        self._open = False
        last = self._stop()
        return last if self._done is None else self._done + last

    def lap(self) -> Measurement:
        """What the open window has measured so far; the window stays open.

        The default closes the backend's window and opens a new one, adding the parts up;
        backends with free-running counters may override it with a plain read.
        """
        if not self._open:
            raise MeterError(f"{self.name} meter: lap() called with no open window")
        part = self._stop()
        self._done = part if self._done is None else self._done + part
        self._start()
        return self._done

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
