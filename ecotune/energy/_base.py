"""The meter interface: a meter measures windows of work and returns a :class:`Measurement` each.

Calling sequence: ``w = meter.open()`` opens a window (a :class:`MeterWindow`),
``w.lap()`` returns the record of the window so far and keeps it open (per-epoch energy
during training), ``w.close()`` closes it and returns a frozen record. ``with
meter.window() as w: ...`` opens and closes one; ``w.measurement`` is set when the block
ends. Meters return energy only: emissions are the caller's (``co2_g`` stays None here;
:func:`ecotune.energy.co2_g_for` turns a window's energy into grams).

Concurrent windows. A meter is one per process and backend (``get_meter``), and its
counters are shared by every window open on it: several trials in threads (``n_jobs``)
open windows at once. The backend keeps one reading window open while any window is, and
reads it at every event (a window opening, lapping, closing). The energy between two
readings is split among the windows open over that interval, so that the windows' energies
add up to the backend's reading over the same time, never counted twice:

- CPU energy by each window's thread CPU time over the interval (the thread that opened
  it; Linux ``pthread_getcpuclockid``): CPU energy follows CPU busy time, and a trial that
  waits (for the GIL, I/O, its GPU) should not pay for another's computation. Where a
  thread clock cannot be read, or no window's thread used the CPU, equally.
- GPU and RAM energy equally: a GPU counter cannot be divided among the threads that
  queue work on it, and RAM draw does not follow any one thread's work. Meters are per
  GPU (``gpus``), so a window on ``cuda:1`` never shares ``cuda:0``'s counter.

A window alone on its meter for its whole life gets the backend's reading unchanged
(``attribution`` ``"exclusive"``); otherwise ``"shared"``. Across processes, a backend
whose counter other processes read too splits it with them where it can (NVML's GPU
ledger, :mod:`ecotune.energy._ledger`, and the RAPL counters CodeCarbon reads; RAPL by
CPU-time share) and says ``"shared"`` when it did; a figure with a whole-device part it
could not split is ``"unsplit"``.

The per-thread calls ``meter.start()``, ``meter.lap()``, ``meter.stop()`` are kept: each
thread has one such window at a time (opening a second in the same thread before closing
the first, or closing one that was never opened, is an error that says so).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

from ecotune import names

__all__ = ["Availability", "Measurement", "Meter", "MeterError", "MeterWindow", "SCOPES",
           "SHARED_RULE", "thread_cpu_clock", "combined_attribution"]

#: How a shared window's energy is split, as recorded in ``energy_details``.
SHARED_RULE = ("cpu by each window's thread CPU time (equally where unreadable); "
               "gpu and ram equally over the time each window was open")

#: What a figure covers: this process's work, or the whole machine (every process).
SCOPES = ("process", "machine")


def combined_attribution(*attributions: str) -> str:
    """The attribution of a figure made of parts: ``unsplit`` over ``shared`` over
    ``exclusive`` (:data:`ecotune.names.ENERGY_ATTRIBUTIONS`).

    Example:
        >>> combined_attribution("exclusive", "shared"), combined_attribution()
        ('shared', 'exclusive')
    """
    return max(attributions, key=names.ENERGY_ATTRIBUTIONS.index,
               default=names.ATTRIBUTION_EXCLUSIVE)


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
    attributed by it; ``warnings`` are caveats a reader of the figure must know;
    ``attribution`` is ``"exclusive"`` (the window was alone on its meter) or ``"shared"``
    (readings split with the other windows open at the same time, :data:`SHARED_RULE`,
    in this process or, for NVML and CodeCarbon's RAPL, in others), ``"unsplit"`` where a
    whole-device part could not be split with other processes.
    ``co2_g`` is None from a meter: the measurement window adds it from ``energy_j``.
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
    attribution: str = names.ATTRIBUTION_EXCLUSIVE

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
            ['cpu_energy_j', 'duration_s', 'energy_attribution', 'energy_details',
             'energy_is_estimate', 'energy_j', 'energy_meter', 'energy_scope']
            >>> m.as_attrs()["energy_details"]
            {'alternatives_j': {'codecarbon': 21.5}}
        """
        details = {
            "alternatives_j": dict(self.alternatives) or None,
            "sources": dict(self.sources) or None,
            "cpu_share": self.cpu_share,
            "warnings": list(self.warnings) or None,
            "shared_by": (SHARED_RULE if self.attribution == names.ATTRIBUTION_SHARED
                          else None),
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
            names.ATTR_ENERGY_ATTRIBUTION: self.attribution,
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
            attribution=combined_attribution(self.attribution, other.attribution),
        )


def thread_cpu_clock() -> Callable[[], float | None]:
    """A reader of the calling thread's CPU seconds, usable from any thread while that
    thread lives; it returns None where the clock cannot be read (not Linux, thread gone).
    """
    try:
        clock_id = time.pthread_getcpuclockid(threading.get_ident())
    except (AttributeError, OSError):
        return lambda: None

    def read() -> float | None:
        try:
            return time.clock_gettime(clock_id)
        except OSError:
            return None

    return read


_DEVICES = ("cpu", "gpu", "ram")


class MeterWindow:
    """One open window of a meter (:meth:`Meter.open`): :meth:`lap` while open,
    :meth:`close` to end it; ``measurement`` is filled in when it closes. Not
    :class:`ecotune.MeasurementWindow`, a trial's window.

    ``cpu_clock`` reads the CPU seconds of the window's work (default: the opening
    thread's CPU clock), by which a shared meter splits CPU energy.
    """

    measurement: Measurement | None = None

    def __init__(self, meter: Meter | None = None,
                 cpu_clock: Callable[[], float | None] | None = None) -> None:
        self._meter = meter
        self._cpu_clock = cpu_clock or thread_cpu_clock()
        self._cpu_last: float | None = None
        self._parts: dict[str, float | None] = dict.fromkeys(_DEVICES)
        self._other_j = 0.0  # energy no device part accounts for
        self._duration_s = 0.0
        self._warnings: dict[str, None] = {}
        self._latest: Measurement | None = None
        self.shared = False

    @property
    def closed(self) -> bool:
        return self.measurement is not None

    def lap(self, exact: bool = False) -> Measurement:
        """What this window has measured so far; it stays open. ``exact`` asks for a real
        reading where a backend would otherwise extrapolate (CodeCarbon)."""
        if self.closed or self._meter is None:
            raise MeterError("lap() on a window that is closed")
        return self._meter._lap_window(self, exact)

    def close(self) -> Measurement:
        """Close the window and return what it measured."""
        if self.closed or self._meter is None:
            raise MeterError("close() on a window that is already closed")
        return self._meter._close_window(self)

    def _read_cpu(self) -> float | None:
        try:
            return self._cpu_clock()
        except Exception:
            return None

    def _figure(self) -> Measurement:
        """The window's share so far as a Measurement (shared windows)."""
        latest = self._latest
        assert latest is not None
        parts = {d: j for d, j in self._parts.items() if j is not None}
        warnings = tuple(self._warnings)
        if latest.attribution == names.ATTRIBUTION_UNSPLIT:
            # "unsplit" names the caveat that matters more; the in-process split is noted.
            warnings += (f"split among this process's concurrent windows: {SHARED_RULE}",)
        return Measurement(
            duration_s=self._duration_s,
            energy_j=sum(parts.values()) + self._other_j,
            cpu_j=self._parts["cpu"], gpu_j=self._parts["gpu"], ram_j=self._parts["ram"],
            co2_g=None, meter=latest.meter, is_estimate=latest.is_estimate,
            scope=latest.scope, sources=latest.sources, cpu_share=latest.cpu_share,
            warnings=warnings,
            attribution=combined_attribution(names.ATTRIBUTION_SHARED, latest.attribution))


class Meter(abc.ABC):
    """Base class of every energy backend.

    Subclasses implement :meth:`_start` and :meth:`_stop` (one backend window), and may
    override :meth:`_lap` with a plain cumulative read; the base class shares that one
    backend window among every window open on the meter (see the module's docstring).
    """

    #: Short backend name recorded with every measurement.
    name: str = "base"
    #: Devices this backend can report ("cpu", "gpu", "ram"), for listings and ``auto``.
    devices: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._open = False  # the backend's window
        self._done: Measurement | None = None  # laps of the backend window already closed
        self._share_lock = threading.RLock()
        self._windows: list[MeterWindow] = []
        self._shared_reading: Measurement | None = None  # the backend's last reading
        self._local = threading.local()

    # -- windows ---------------------------------------------------------------------

    def open(self, cpu_clock: Callable[[], float | None] | None = None) -> MeterWindow:
        """Open a window on this meter; other windows may be open at the same time (in
        other threads, or this one). ``cpu_clock``: CPU seconds of the window's work
        (default: the calling thread's CPU clock)."""
        window = MeterWindow(self, cpu_clock)
        with self._share_lock:
            if not self._windows:
                self._done = None
                self._shared_reading = None
                self._begin()
                self._start()
                self._open = True
            else:
                self._split(self._lap(False))
            window._cpu_last = window._read_cpu()
            self._windows.append(window)
            if len(self._windows) > 1:
                self._windows_changed(len(self._windows))
        return window

    def _lap_window(self, window: MeterWindow, exact: bool) -> Measurement:
        with self._share_lock:
            reading = self._lap(exact)
            self._split(reading)
            return reading if not window.shared else window._figure()

    def _close_window(self, window: MeterWindow) -> Measurement:
        with self._share_lock:
            if window not in self._windows:
                raise MeterError(f"{self.name} meter: close() on a window it did not open")
            last = len(self._windows) == 1
            try:
                if last:
                    stopped = self._stop()
                    reading = self._final(
                        stopped if self._done is None else self._done + stopped)
                else:
                    # The closing window's figure is final: a real reading where a backend
                    # would extrapolate (CodeCarbon), not its last reading's mean power.
                    reading = self._lap(True)
                self._split(reading)
            finally:
                self._windows.remove(window)
                if last:
                    self._open = False
            if not last:
                self._windows_changed(len(self._windows))
            window.measurement = reading if not window.shared else window._figure()
            return window.measurement

    def _split(self, reading: Measurement) -> None:
        """Share what the backend measured since its last reading among the open windows.
        (Runs at every reading, so after every epoch: plain tuples, no per-call dicts.)"""
        previous = self._shared_reading
        self._shared_reading = reading
        windows = self._windows
        if not windows:
            return
        n = len(windows)
        if n > 1:
            for window in windows:
                window.shared = True
        now = (reading.cpu_j, reading.gpu_j, reading.ram_j)
        before = ((0.0, 0.0, 0.0) if previous is None else
                  (previous.cpu_j or 0.0, previous.gpu_j or 0.0, previous.ram_j or 0.0))
        deltas = tuple(None if j is None else j - b for j, b in zip(now, before))
        counted = sum(j for j in now if j is not None)
        counted_before = sum(b for j, b in zip(now, before) if j is not None)
        other_j = (reading.energy_j - counted) - (
            (previous.energy_j - counted_before) if previous is not None else 0.0)
        duration_s = reading.duration_s - (previous.duration_s if previous else 0.0)
        # Each window's thread CPU seconds over the interval: the CPU part's weights.
        cpu_now = [w._read_cpu() for w in windows]
        if n == 1:
            cpu_weights = [1.0]  # alone: the whole reading, whatever its thread used
        else:
            used = [None if now_s is None or w._cpu_last is None
                    else max(now_s - w._cpu_last, 0.0) for w, now_s in zip(windows, cpu_now)]
            total = sum(u for u in used if u is not None)
            cpu_weights = ([u / total for u in used]  # type: ignore[operator]
                           if None not in used and total > 0 else [1.0 / n] * n)
        warnings = dict.fromkeys(reading.warnings) if reading.warnings else None
        for window, now_s, cpu_weight in zip(windows, cpu_now, cpu_weights):
            window._cpu_last = now_s
            parts = window._parts
            for device, delta in zip(_DEVICES, deltas):
                if delta is not None:
                    weight = cpu_weight if device == "cpu" else 1.0 / n
                    parts[device] = (parts[device] or 0.0) + delta * weight
            window._other_j += other_j / n
            window._duration_s += duration_s
            if warnings:
                window._warnings.update(warnings)
            window._latest = reading

    # -- one window per thread (the calling sequence before windows could overlap) ----

    def start(self) -> None:
        """Open this thread's window."""
        if getattr(self._local, "window", None) is not None:
            raise MeterError(f"{self.name} meter: a window is already open in this thread; "
                             "stop it first (or open() another)")
        self._local.window = self.open()

    def stop(self) -> Measurement:
        """Close this thread's window and return what it measured."""
        window = getattr(self._local, "window", None)
        if window is None:
            raise MeterError(f"{self.name} meter: stop() called with no open window")
        self._local.window = None
        return window.close()

    def lap(self, exact: bool = False) -> Measurement:
        """What this thread's window has measured so far; the window stays open."""
        window = getattr(self._local, "window", None)
        if window is None:
            raise MeterError(f"{self.name} meter: lap() called with no open window")
        return window.lap(exact)

    @contextlib.contextmanager
    def window(self) -> Iterator[MeterWindow]:
        """Measure the enclosed block: ``with meter.window() as w: ...; w.measurement``."""
        handle = self.open()
        try:
            yield handle
        finally:
            # Close the window even when the work failed, so the meter stays usable.
            handle.close()

    def warm_up(self) -> None:
        """Pay this backend's one-off costs now (a hardware probe, say) rather than in the
        first window. Optional; the default does nothing."""
        return None

    # -- the backend ---------------------------------------------------------------------

    def _begin(self) -> None:  # noqa: B027 - a hook: most backends need nothing here
        """Called before the backend window opens (not at the restarts of a default lap)."""

    def _windows_changed(self, n_windows: int) -> None:  # noqa: B027 - a hook, as _begin
        """Called after a window opened or closed while the backend window stays open,
        with the number now open (a backend that splits its counter with other processes
        tells them)."""

    def _lap(self, exact: bool = False) -> Measurement:
        """The backend window so far, cumulative; it stays open.

        The default closes the backend's window and opens a new one, adding the parts up;
        backends with free-running counters override it with a plain read.
        """
        part = self._stop()
        self._done = part if self._done is None else self._done + part
        self._start()
        return self._done

    def _final(self, reading: Measurement) -> Measurement:
        """The closing reading of the backend's window, as reported (a backend whose laps
        extrapolate keeps the stop at or above its last lap)."""
        return reading

    @abc.abstractmethod
    def _start(self) -> None: ...

    @abc.abstractmethod
    def _stop(self) -> Measurement: ...
