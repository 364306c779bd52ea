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
from collections.abc import Iterator, Mapping
from typing import NamedTuple

from ecotune import names

__all__ = ["Availability", "Measurement", "Meter", "MeterError", "MeterWindow", "SCOPES"]

#: What a figure covers: this process's work, or the whole machine (every process).
SCOPES = ("process", "machine")


class Availability(NamedTuple):
    """Result of a backend's availability probe: usable here or not, and why."""

    available: bool
    reason: str


class MeterError(RuntimeError):
    """A meter cannot do what was asked (not available here, window misuse, vendor error)."""


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Energy and time of one window of work.

    ``None`` means "not measured" (never 0). ``energy_j`` covers every device the meter
    measured (``cpu_j + gpu_j + ram_j`` over those that are not None).

    Added fields (all with defaults): ``scope`` is ``"process"`` when the figures are this
    process's share, ``"machine"`` when they include every process on the devices read
    (whole-machine counters); ``alternatives`` maps other backends that read the same window
    to their ``energy_j`` (for comparing software and hardware figures); ``sources`` maps
    each measured device to the backend that measured it; ``cpu_share`` is the fraction of
    the machine's busy CPU time this process used over the window, where CPU energy was
    attributed by it; ``warnings`` are caveats a reader of the figure must know.
    """

    duration_s: float
    energy_j: float
    cpu_j: float | None
    gpu_j: float | None
    ram_j: float | None
    co2_g: float | None
    meter: str
    is_estimate: bool
    scope: str = "process"
    alternatives: Mapping[str, float] = dataclasses.field(default_factory=dict, hash=False)
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)
    cpu_share: float | None = None
    warnings: tuple[str, ...] = ()

    def as_attrs(self) -> dict[str, object]:
        """The record as flat, JSON-safe key/values (the names trials store them under).

        Devices not measured are left out rather than stored as None. The figures a user
        compares trials by are flat; the rest (other backends' figures, which backend
        measured which device, the CPU share, warnings) travel together in
        ``energy_details``, because each attribute costs a storage transaction.

        Example:
            >>> m = Measurement(2.0, 30.0, 30.0, None, None, None, "rapl", False,
            ...                 scope="machine", alternatives={"codecarbon": 21.5})
            >>> sorted(m.as_attrs())  # doctest: +NORMALIZE_WHITESPACE
            ['cpu_energy_j', 'duration_s', 'energy_details', 'energy_is_estimate', 'energy_j',
             'energy_meter', 'energy_scope']
            >>> m.as_attrs()["energy_details"]
            {'alternatives_j': {'codecarbon': 21.5}}
        """
        details = {
            "alternatives_j": dict(self.alternatives) or None,
            "sources": dict(self.sources) or None,
            "cpu_share": self.cpu_share,
            "warnings": list(self.warnings) or None,
        }
        attrs = {
            names.ATTR_ENERGY: self.energy_j,
            names.ATTR_CPU_ENERGY: self.cpu_j,
            names.ATTR_GPU_ENERGY: self.gpu_j,
            names.ATTR_RAM_ENERGY: self.ram_j,
            names.ATTR_DURATION: self.duration_s,
            names.ATTR_CO2: self.co2_g,
            names.ATTR_METER: self.meter,
            names.ATTR_ENERGY_IS_ESTIMATE: self.is_estimate,
            names.ATTR_ENERGY_SCOPE: self.scope,
            names.ATTR_ENERGY_DETAILS: ({k: v for k, v in details.items() if v is not None}
                                        or None),
        }
        return {key: value for key, value in attrs.items() if value is not None}

    def __add__(self, other: Measurement) -> Measurement:
        """Two consecutive windows as one: figures add, None where neither measured."""
        if not isinstance(other, Measurement):
            return NotImplemented

        def add(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else (a or 0.0) + (b or 0.0)

        alternatives = {name: self.alternatives[name] + other.alternatives[name]
                        for name in self.alternatives if name in other.alternatives}
        cpu_s = [m.cpu_share * m.duration_s for m in (self, other) if m.cpu_share is not None]
        return Measurement(
            duration_s=self.duration_s + other.duration_s,
            energy_j=self.energy_j + other.energy_j,
            cpu_j=add(self.cpu_j, other.cpu_j),
            gpu_j=add(self.gpu_j, other.gpu_j),
            ram_j=add(self.ram_j, other.ram_j),
            co2_g=add(self.co2_g, other.co2_g),
            meter=self.meter if self.meter == other.meter else f"{self.meter}+{other.meter}",
            is_estimate=self.is_estimate or other.is_estimate,
            scope="machine" if "machine" in (self.scope, other.scope) else "process",
            alternatives=alternatives,
            sources={**other.sources, **self.sources},
            # A duration-weighted share where both parts have one.
            cpu_share=(sum(cpu_s) / (self.duration_s + other.duration_s)
                       if len(cpu_s) == 2 and self.duration_s + other.duration_s > 0
                       else None),
            warnings=tuple(dict.fromkeys(self.warnings + other.warnings)),
        )


class MeterWindow:
    """Handle of a meter's open window (:meth:`Meter.window`); ``measurement`` is filled in
    when the window closes. Not :class:`ecotune.MeasurementWindow`, a trial's window."""

    measurement: Measurement | None = None


class Meter(abc.ABC):
    """Base class of every energy backend.

    Subclasses implement :meth:`_start` and :meth:`_stop`; the base class enforces the
    open/close discipline.
    """

    #: Short backend name recorded with every measurement.
    name: str = "base"
    #: Devices this backend can report ("cpu", "gpu", "ram"), for listings and ``auto``.
    devices: tuple[str, ...] = ()

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

    def warm_up(self) -> None:
        """Pay this backend's one-off costs now (a hardware probe, say) rather than in the
        first window. Optional; the default does nothing."""
        return None

    def lap(self, exact: bool = False) -> Measurement:
        """What the open window has measured so far; the window stays open.

        ``exact`` asks for a real reading where a backend would otherwise extrapolate
        between readings (CodeCarbon); the others always read.

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
    def window(self) -> Iterator[MeterWindow]:
        """Measure the enclosed block: ``with meter.window() as w: ...; w.measurement``."""
        handle = MeterWindow()
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
