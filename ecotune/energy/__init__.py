"""Energy measurement: meters that measure a window of work, and carbon intensity.

This layer knows nothing of Optuna. ``get_meter(name)`` returns the process's meter for a
backend (one per backend and configuration, reused across trials, and shared by trials
that run at once: each reading is split among the windows open over it). Meters measure
energy; emissions are computed once, from a window's energy (:func:`co2_g_for`):

- ``rapl``: CPU package and DRAM energy counters (Linux powercap): hardware figures.
- ``nvml``: NVIDIA GPU energy counters, or integrated power samples on older GPUs; a
  GPU's counter is split among the processes measuring it (``_ledger.py``).

A meter can be asked for the GPUs a piece of work uses (``gpus``: this process's CUDA
device indices; ``()`` for work on the CPU): GPUs outside them are not read, so work on
the CPU is not charged an idle GPU's draw. ``None`` reads every visible GPU.
- ``codecarbon``: CodeCarbon's offline tracker (RAPL/NVML where readable, else its
  CPU-load model: an estimate); the counters it reads are split among the processes
  measuring them (``_codecarbon_ledgers.py``).
- ``cputime``: process CPU seconds x an assumed power per core: always an estimate, the
  last resort.
- ``auto``: per device the best of those available here (RAPL for CPU and RAM, NVML for
  GPUs, CodeCarbon or CPU time for what remains); the other available backends read the
  same window and their figures are kept in ``Measurement.alternatives``.

Every backend has a cached probe (:func:`meter_status`) that never raises; asking for a
backend this machine lacks is a :class:`MeterError` that says why.
"""

from __future__ import annotations

import functools

from ecotune.energy._auto import CombinedMeter
from ecotune.energy._base import (
    SCOPES,
    SHARED_RULE,
    Availability,
    Measurement,
    Meter,
    MeterError,
    MeterWindow,
    thread_cpu_clock,
)
from ecotune.energy._codecarbon import CodeCarbonMeter, codecarbon_scope, codecarbon_status
from ecotune.energy._cputime import CpuTimeMeter, cputime_status
from ecotune.energy._nvml import (
    NvmlMeter,
    find_gpu,
    gpu_entries,
    nvml_gpu_count,
    nvml_status,
    visible_gpu_ids,
)
from ecotune.energy._rapl import RAPL_ROOT, RaplMeter, rapl_status
from ecotune.energy._share import CpuShareClock, CpuTimes, cpu_share
from ecotune.energy.carbon import carbon_intensity_g_per_kwh, co2_g_for
from ecotune.names import METER_BACKENDS

__all__ = [
    "Availability",
    "Measurement",
    "Meter",
    "MeterError",
    "MeterWindow",
    "SCOPES",
    "SHARED_RULE",
    "thread_cpu_clock",
    "CodeCarbonMeter",
    "codecarbon_scope",
    "CombinedMeter",
    "CpuShareClock",
    "CpuTimeMeter",
    "CpuTimes",
    "NvmlMeter",
    "find_gpu",
    "gpu_entries",
    "nvml_gpu_count",
    "visible_gpu_ids",
    "RaplMeter",
    "MEASURES",
    "cpu_share",
    "get_meter",
    "make_meter",
    "meter_status",
    "carbon_intensity_g_per_kwh",
    "co2_g_for",
]

#: What each backend measures, in a few words (for listings such as ``ecotune meters``).
MEASURES = {
    "rapl": "CPU package + DRAM, hardware counters; whole machine, attributed by CPU-time share",
    "nvml": "visible NVIDIA GPUs, hardware energy counter or sampled power; whole GPU, "
            "split among the processes measuring it",
    "codecarbon": "CPU + RAM (+ GPU): counters where readable (whole machine), else a "
                  "TDP x process-load model and the process's RAM (estimate)",
    "cputime": "CPU only: process CPU seconds x an assumed power per core (estimate)",
}


def meter_status(name: str) -> Availability:
    """Whether backend ``name`` can be used here, and why (cached probes; never raises).

    Example:
        >>> meter_status("cputime").available
        True
        >>> meter_status("nope")
        Availability(available=False, reason="unknown meter 'nope'")
    """
    probes = {"rapl": lambda: rapl_status(RAPL_ROOT), "nvml": nvml_status,
              "codecarbon": codecarbon_status, "cputime": cputime_status}
    if name not in probes:
        return Availability(False, f"unknown meter {name!r}")
    try:
        return probes[name]()
    except Exception as err:  # a probe never raises, whatever the backend does
        return Availability(False, f"{name} probe failed: {err!r}")


def make_meter(name: str, gpus: tuple[int, ...] | None = None) -> Meter:
    """A new meter for backend ``name`` (uncached; :func:`get_meter` is the cached one).
    ``auto`` combines the process's cached backends, so that its windows share their
    counters with every other window of the process."""
    if name == "auto":
        return _auto(gpus)
    if name not in METER_BACKENDS:
        raise MeterError(f"unknown meter {name!r}; expected 'auto' or one of "
                         f"{list(METER_BACKENDS)}")
    status = meter_status(name)
    if not status.available:
        raise MeterError(f"the {name} meter is not available here: {status.reason}")
    if name == "rapl":
        return RaplMeter(root=RAPL_ROOT)
    if name == "nvml":
        return NvmlMeter(cuda_indices=gpus)
    if name == "codecarbon":
        # None: CodeCarbon's own default, the GPUs of CUDA_VISIBLE_DEVICES.
        return CodeCarbonMeter(gpu_ids=None if gpus is None else tuple(gpu_entries(gpus)))
    return CpuTimeMeter()


def _backend(name: str, gpus: tuple[int, ...] | None) -> Meter:
    """The process's meter of one backend: only NVML and CodeCarbon depend on the GPUs
    (RAPL and CPU time read the same counters whatever the work's GPU)."""
    return get_meter(name, gpus=gpus if name in ("nvml", "codecarbon") else None)


def _auto(gpus: tuple[int, ...] | None) -> Meter:
    # No GPU of the work's to read: NVML is not even an alternative (an idle GPU's draw).
    available = [n for n in METER_BACKENDS if not (n == "nvml" and gpus == ())
                 and meter_status(n).available]
    meters = {}
    for n in available:
        # Where NVML reads the GPUs, CodeCarbon reads the CPU and RAM only: one tracker for
        # every GPU's windows, so the process's CPU is never counted once per GPU.
        n_gpus = () if n == "codecarbon" and "nvml" in available else gpus
        meters[n] = _backend(n, n_gpus)
    chosen: dict[str, Meter] = {}
    if "rapl" in meters:
        chosen.update({device: meters["rapl"] for device in meters["rapl"].devices})
    if "nvml" in meters:
        chosen["gpu"] = meters["nvml"]
    fallback = meters.get("codecarbon", meters["cputime"])
    for device in fallback.devices:
        # GPUs only through NVML: CodeCarbon reads them through NVML too, so without it
        # there is no GPU figure to be had.
        if device not in chosen and device != "gpu":
            chosen[device] = fallback
    others = [m for m in meters.values() if m not in chosen.values()]
    if not others and len(set(chosen.values())) == 1:
        return fallback
    return CombinedMeter(chosen, alternatives=others)


@functools.cache
def _cached_meter(name: str, gpus: tuple[int, ...] | None) -> Meter:
    return make_meter(name, gpus)


def get_meter(name: str = "auto", gpus: tuple[int, ...] | None = None) -> Meter:
    """The process's meter for backend ``name`` (cached: one per name and GPUs).

    ``gpus`` are the CUDA device indices (``cuda:i``) of this process the measured work
    uses: only those GPUs are read, and ``()`` (work on the CPU) reads none, so no idle
    GPU is charged. None reads every visible GPU (the whole machine's, where
    ``CUDA_VISIBLE_DEVICES`` is unset).

    Several windows may be open on a meter at once (trials in threads): each reading is
    split among them (:mod:`ecotune.energy._base`). Meters measure energy only; emissions
    are :func:`co2_g_for` of a window's energy.

    Raises:
        MeterError: ``name`` is unknown, or names a backend this machine cannot use.

    Example:
        >>> get_meter("cputime").name
        'cputime'
        >>> get_meter("cputime") is get_meter("cputime")
        True
    """
    return _cached_meter(name, None if gpus is None else tuple(gpus))


get_meter.cache_clear = _cached_meter.cache_clear  # type: ignore[attr-defined]
