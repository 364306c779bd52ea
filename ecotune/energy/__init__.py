"""Energy measurement: meters that measure a window of work, and carbon intensity.

This layer knows nothing of Optuna. ``get_meter(name)`` returns the process's meter for a
backend (one per backend and configuration, reused across trials):

- ``codecarbon``: CodeCarbon's offline tracker (RAPL/NVML where readable, else its
  CPU-load model: an estimate).
- ``cputime``: process CPU seconds x an assumed power per core: always an estimate, the
  last resort.
- ``auto``: the best of those available here.
"""

from __future__ import annotations

import functools

from ecotune.energy._base import Measurement, Meter, MeterError, Window
from ecotune.energy._codecarbon import CodeCarbonMeter, codecarbon_available
from ecotune.energy._cputime import CpuTimeMeter
from ecotune.energy.carbon import carbon_intensity_g_per_kwh, co2_g_for

__all__ = [
    "Measurement",
    "Meter",
    "MeterError",
    "Window",
    "CodeCarbonMeter",
    "CpuTimeMeter",
    "METERS",
    "get_meter",
    "carbon_intensity_g_per_kwh",
    "co2_g_for",
]

#: Backends by name, in order of preference for ``auto``.
METERS = ("codecarbon", "cputime")


@functools.cache
def get_meter(name: str = "auto", country: str = "USA") -> Meter:
    """The process's meter for backend ``name`` (cached: one per name and country).

    Raises:
        MeterError: ``name`` is unknown, or names a backend this machine cannot use.

    Example:
        >>> get_meter("cputime").name
        'cputime'
    """
    carbon_intensity_g_per_kwh(country)  # an unknown country fails here, before any work
    if name == "auto":
        name = "codecarbon" if codecarbon_available() else "cputime"
    if name == "codecarbon":
        return CodeCarbonMeter(country=country)
    if name == "cputime":
        return CpuTimeMeter(country=country)
    raise MeterError(f"unknown meter {name!r}; expected 'auto' or one of {list(METERS)}")
