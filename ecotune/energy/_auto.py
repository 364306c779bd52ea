"""``auto``: the best available source per device, the other backends alongside.

Per device, in order of preference: CPU and RAM from RAPL (hardware counters), GPU from
NVML; what remains from CodeCarbon's offline tracker, else the process-CPU-time estimate.
Every other available backend reads the same window too, and its ``energy_j`` is recorded
in :attr:`Measurement.alternatives`, so software and hardware figures can be compared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ecotune.energy._base import (
    Measurement,
    Meter,
    MeterError,
    MeterWindow,
    combined_attribution,
    thread_cpu_clock,
)

__all__ = ["CombinedMeter"]

DEVICES = ("cpu", "gpu", "ram")


class CombinedMeter(Meter):
    """Several backends over one window: each device's figure from its chosen backend.

    Args:
        chosen: device -> the meter whose figure for that device is used.
        alternatives: further meters that read the same window only for comparison.

    Its windows are windows on each backend: a backend shared with other combined meters
    (``get_meter("auto", gpus=(0,))`` and ``gpus=(1,)`` read one RAPL meter, each its own
    NVML meter) splits its readings among all their windows.

    Example:
        >>> from ecotune.energy import CpuTimeMeter
        >>> cheap, other = CpuTimeMeter(watts_per_core=5.0), CpuTimeMeter(watts_per_core=9.0)
        >>> other.name = "cputime-9w"
        >>> meter = CombinedMeter({"cpu": cheap}, alternatives=[other])
        >>> with meter.window() as w:
        ...     _ = sum(i * i for i in range(200_000))
        >>> m = w.measurement
        >>> m.meter, list(m.alternatives), m.sources
        ('cputime', ['cputime-9w'], {'cpu': 'cputime'})
    """

    def __init__(self, chosen: Mapping[str, Meter], alternatives: Sequence[Meter] = ()) -> None:
        super().__init__()
        unknown = set(chosen) - set(DEVICES)
        if unknown or not chosen:
            raise ValueError(f"chosen must map some of {DEVICES} to meters (got {list(chosen)})")
        self.chosen = dict(chosen)
        primaries = list(dict.fromkeys(self.chosen.values()))  # unique, in order
        self.meters = primaries + [m for m in alternatives if m not in primaries]
        self.name = "+".join(m.name for m in primaries)
        self.devices = tuple(d for d in DEVICES if d in self.chosen)

    def open(self, cpu_clock: Callable[[], float | None] | None = None) -> MeterWindow:
        """A window on every backend at once (see :class:`_CombinedWindow`)."""
        cpu_clock = cpu_clock or thread_cpu_clock()
        opened: list[MeterWindow] = []
        try:
            for meter in self.meters:
                opened.append(meter.open(cpu_clock))
        except Exception:
            for window in opened:  # leave every backend closed
                window.close()
            raise
        return _CombinedWindow(self, opened)

    def _start(self) -> None:  # pragma: no cover - its windows are the backends'
        raise NotImplementedError

    def _stop(self) -> Measurement:  # pragma: no cover
        raise NotImplementedError

    def warm_up(self) -> None:
        for meter in self.meters:
            meter.warm_up()

    def _read_all(self, windows: Sequence[MeterWindow], closing: bool,
                  exact: bool = False) -> Measurement:
        readings: dict[str, Measurement] = {}
        errors: list[str] = []
        for meter, window in zip(self.meters, windows):
            try:
                readings[meter.name] = window.close() if closing else window.lap(exact)
            except MeterError as err:
                errors.append(str(err))
        return self._combine(readings, errors)

    def _used_devices(self, name: str) -> set[str]:
        return {device for device, meter in self.chosen.items() if meter.name == name}

    def _combine(self, readings: Mapping[str, Measurement], errors: list[str]) -> Measurement:
        parts: dict[str, float | None] = {}
        used: list[Measurement] = []
        for device, meter in self.chosen.items():
            if meter.name not in readings:
                raise MeterError(f"{self.name} meter: the {device} source failed: "
                                 f"{'; '.join(errors)}")
            reading = readings[meter.name]
            parts[device] = getattr(reading, f"{device}_j")
            if reading not in used:
                used.append(reading)
        energy_j = sum(j for j in parts.values() if j is not None)
        cpu_source = readings[self.chosen["cpu"].name] if "cpu" in self.chosen else None
        warnings = tuple(dict.fromkeys(w for m in used for w in m.warnings))
        warnings += tuple(f"alternative backend failed: {e}" for e in errors)
        return Measurement(
            duration_s=max(m.duration_s for m in used),
            energy_j=energy_j,
            cpu_j=parts.get("cpu"),
            gpu_j=parts.get("gpu"),
            ram_j=parts.get("ram"),
            co2_g=None,
            meter=self.name,
            is_estimate=any(m.is_estimate for m in used),
            scope="machine" if any(m.scope == "machine" for m in used) else "process",
            # A backend whose every figure was used adds nothing beside the result.
            alternatives={name: m.energy_j for name, m in readings.items()
                          if not set(m.sources) <= self._used_devices(name)},
            sources={device: meter.name for device, meter in self.chosen.items()
                     if parts[device] is not None},
            cpu_share=cpu_source.cpu_share if cpu_source is not None else None,
            warnings=warnings,
            attribution=combined_attribution(*(m.attribution for m in used)),
        )


class _CombinedWindow(MeterWindow):
    """A window of a :class:`CombinedMeter`: one window on each of its backends."""

    def __init__(self, meter: CombinedMeter, windows: Sequence[MeterWindow]) -> None:
        super().__init__(None, lambda: None)
        self._combined = meter
        self._backend_windows = list(windows)

    @property
    def shared(self) -> bool:  # type: ignore[override]
        return any(w.shared for w in self._backend_windows)

    @shared.setter
    def shared(self, value: bool) -> None:
        pass

    def lap(self, exact: bool = False) -> Measurement:
        if self.closed:
            raise MeterError("lap() on a window that is closed")
        return self._combined._read_all(self._backend_windows, closing=False, exact=exact)

    def close(self) -> Measurement:
        if self.closed:
            raise MeterError("close() on a window that is already closed")
        self.measurement = self._combined._read_all(self._backend_windows, closing=True)
        return self.measurement
