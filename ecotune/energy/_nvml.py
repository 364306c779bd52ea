"""NVIDIA GPU energy through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``).

GPUs from Volta on have a total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
millijoules since the driver loaded): a window is the difference of two reads. Older GPUs
only report instantaneous power (``nvmlDeviceGetPowerUsage``, milliwatts); there a
background thread samples it every ``sample_interval_s`` and the samples are integrated
with the trapezoid rule. NVML refreshes both about every 100 ms.

Only the GPUs of ``CUDA_VISIBLE_DEVICES`` are read (all GPUs where it is unset). A GPU's
figure covers everything running on it, not only this process: the scope is "machine".
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ecotune.energy._base import Availability, Measurement, Meter, MeterError
from ecotune.energy.carbon import co2_g_for

try:  # optional at import time: the probe says what to install
    import pynvml
except Exception:  # pragma: no cover - depends on the environment
    pynvml = None

__all__ = ["NvmlMeter", "nvml_status", "visible_gpu_ids"]


def visible_gpu_ids(value: str | None = None) -> list[str] | None:
    """The entries of ``value`` (default: ``CUDA_VISIBLE_DEVICES``): indices or UUIDs.

    None where the variable is unset (every GPU is visible). As CUDA does, the list ends at
    the first empty or negative entry.

    Example:
        >>> visible_gpu_ids("1, GPU-8a1b,-1,0")
        ['1', 'GPU-8a1b']
    """
    if value is None:
        value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    ids = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry or entry.startswith("-"):
            break
        ids.append(entry)
    return ids


def _handles() -> list[tuple[str, Any]]:
    """(label, handle) of each visible GPU. Raises pynvml.NVMLError."""
    ids = visible_gpu_ids()
    if ids is None:
        ids = [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
    handles = []
    for gpu_id in ids:
        if gpu_id.isdigit():
            handles.append((f"gpu{gpu_id}", pynvml.nvmlDeviceGetHandleByIndex(int(gpu_id))))
        else:
            handles.append((gpu_id, pynvml.nvmlDeviceGetHandleByUUID(gpu_id)))
    return handles


def _has_energy_counter(handle: Any) -> bool:
    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError:
        return False
    return True


@functools.cache
def nvml_status() -> Availability:
    """Whether NVML can read at least one visible GPU here. Cached; never raises.

    Example:
        >>> nvml_status().available in (True, False)
        True
    """
    if pynvml is None:
        return Availability(False, "nvidia-ml-py is not installed: pip install nvidia-ml-py")
    try:
        pynvml.nvmlInit()
        handles = _handles()
    except Exception as err:
        return Availability(False, f"NVML not usable (no NVIDIA driver or GPU?): {err}")
    if not handles:
        return Availability(False, "no GPU visible (CUDA_VISIBLE_DEVICES="
                                   f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    try:
        kinds = [f"{label}: {'energy counter' if _has_energy_counter(h) else 'power samples'}"
                 for label, h in handles]
    except Exception as err:
        return Availability(False, f"NVML could not query the GPUs: {err}")
    return Availability(True, ", ".join(kinds))


class NvmlMeter(Meter):
    """GPU energy of the visible GPUs from NVML (hardware figures, whole-GPU scope).

    Args:
        country: ISO alpha-3 code for the emissions figure.
        pue: power usage effectiveness of the site, >= 1.
        sample_interval_s: power-sampling period on GPUs without an energy counter; 0
            samples only at start, lap and stop (tests call :meth:`sample` themselves).
        clock: seconds clock for the power samples (tests pass a fake).

    Raises:
        MeterError: NVML or a GPU is not available here, or a GPU reads neither energy
            nor power.
    """

    name = "nvml"
    devices = ("gpu",)

    def __init__(self, country: str = "USA", pue: float = 1.0, sample_interval_s: float = 0.1,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__()
        status = nvml_status()
        if not status.available:
            raise MeterError(f"the nvml meter is not available here: {status.reason}")
        self.country = country
        self.pue = pue
        self.sample_interval_s = sample_interval_s
        self.clock = clock
        try:
            handles = _handles()
            self._counter = [(lbl, h) for lbl, h in handles if _has_energy_counter(h)]
            self._sampled = [(lbl, h) for lbl, h in handles if not _has_energy_counter(h)]
            for _, handle in self._sampled:
                pynvml.nvmlDeviceGetPowerUsage(handle)
        except pynvml.NVMLError as err:
            raise MeterError(f"nvml meter: a GPU reads neither energy nor power: {err}") \
                from err
        self.gpus = tuple(lbl for lbl, _ in handles)
        self._lock = threading.Lock()
        self._mj0: list[int] = []
        self._sample_t_s = 0.0
        self._sample_w: list[float] = []
        self._sampled_j: list[float] = []
        self._t0_s = 0.0
        self._stop_event = threading.Event()
        self._sampler: threading.Thread | None = None

    def _power_w(self) -> list[float]:
        return [pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0 for _, h in self._sampled]

    def sample(self) -> None:
        """Take one power sample of each GPU without an energy counter and integrate it."""
        if not self._sampled:
            return
        try:
            power_w = self._power_w()
        except pynvml.NVMLError as err:
            raise MeterError(f"nvml meter: could not read GPU power: {err}") from err
        with self._lock:
            now_s = self.clock()
            dt_s = now_s - self._sample_t_s
            for i, watts in enumerate(power_w):
                self._sampled_j[i] += (self._sample_w[i] + watts) / 2.0 * dt_s
            self._sample_w = power_w
            self._sample_t_s = now_s

    def _sample_loop(self) -> None:
        while not self._stop_event.wait(self.sample_interval_s):
            try:
                self.sample()
            except MeterError:
                pass  # the sample at stop() reports the problem

    def _start(self) -> None:
        try:
            self._mj0 = [pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for _, h in self._counter]
            self._sample_w = self._power_w()
        except pynvml.NVMLError as err:
            raise MeterError(f"nvml meter: could not start: {err}") from err
        self._sample_t_s = self.clock()
        self._sampled_j = [0.0] * len(self._sampled)
        self._t0_s = time.perf_counter()
        if self._sampled and self.sample_interval_s > 0:
            self._stop_event.clear()
            self._sampler = threading.Thread(target=self._sample_loop, daemon=True,
                                             name="ecotune-nvml-sampler")
            self._sampler.start()

    def _read(self) -> Measurement:
        self.sample()
        try:
            counted_j = [(pynvml.nvmlDeviceGetTotalEnergyConsumption(h) - mj0) / 1000.0
                         for (_, h), mj0 in zip(self._counter, self._mj0)]
        except pynvml.NVMLError as err:
            raise MeterError(f"nvml meter: could not read the energy counter: {err}") from err
        with self._lock:
            gpu_j = sum(counted_j) + sum(self._sampled_j)
        return Measurement(
            duration_s=time.perf_counter() - self._t0_s, energy_j=gpu_j, cpu_j=None,
            gpu_j=gpu_j, ram_j=None, co2_g=co2_g_for(gpu_j, self.country, self.pue),
            meter=self.name, is_estimate=False, scope="machine", sources={"gpu": self.name},
            warnings=(f"nvml: gpu_j covers the whole GPU(s) {', '.join(self.gpus)}, "
                      "including any other process using them",))

    def _stop(self) -> Measurement:
        if self._sampler is not None:
            self._stop_event.set()
            self._sampler.join()
            self._sampler = None
        return self._read()

    def lap(self, exact: bool = False) -> Measurement:
        """The open window so far (a plain read); the window stays open."""
        if not self._open:
            raise MeterError(f"{self.name} meter: lap() called with no open window")
        return self._read()
