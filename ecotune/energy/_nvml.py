"""NVIDIA GPU energy through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``).

GPUs from Volta on have a total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
millijoules since the driver loaded): a window is the difference of two reads. Older GPUs
only report power (``nvmlDeviceGetPowerUsage``, milliwatts); there a background thread
samples it every ``sample_interval_s`` and the samples are integrated with the trapezoid
rule. NVML refreshes both about every 100 ms (:data:`COUNTER_PERIOD_S`).

What the ``power`` method integrates: on Ampere and newer GPUs (except the A100, GA100)
``nvmlDeviceGetPowerUsage`` is the mean power over the last second, not an instantaneous
reading; on the A100 and older GPUs it is instantaneous. Integrated over a window, a 1 s
mean lags the real draw by about half a second: a burst shorter than a second is spread
over the following second, and a window of a few seconds or less is misread by up to its
first and last half second's difference. The counter has no such lag.

Counter faults: the GPUs a meter reads by counter are polled for power too, so that a
window the counter cannot measure is measured by power instead, with a warning:

- a counter that goes backwards between two reads (a driver reload or a GPU reset puts
  it back to 0) would give negative or too little energy;
- a window shorter than the counter's update period would read 0 J, or one update's
  worth, whatever the GPU drew.

Where such a GPU's power cannot be read either, the window is an error that says so,
never a silent or negative figure.

Which GPUs: NVML numbers GPUs its own way and ignores ``CUDA_VISIBLE_DEVICES``, so a
process's CUDA device ``cuda:i`` is found through the i-th entry of that variable (an NVML
index, a ``GPU-`` UUID or a unique prefix of one, or a MIG instance ``MIG-...``), or NVML
index i where it is unset. A meter given ``cuda_indices`` reads only those devices (the
GPU a trial trains on); without them, every visible GPU. A MIG instance has no counter of
its own: its whole GPU is read, once however many of its instances are visible.

A GPU's figure covers everything running on it, not only this process: the scope is
"machine". Worker processes of one machine that read the same GPU split its counter
through a ledger file per GPU (:mod:`ecotune.energy._ledger`): each reading's advance is
shared among the windows open on that GPU in every process, so the workers' figures add
up to the GPU's counter, none counted twice (``attribution`` ``"shared"`` where another
process's window was open on it too). A GPU read by power (before Volta, or a window the
counter cannot measure), or one whose ledger cannot be used, is booked whole:
``"unsplit"``, with a warning.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ecotune import names
from ecotune.energy._base import Availability, Measurement, Meter, MeterError
from ecotune.energy._ledger import GpuLedger, Settlement

try:  # optional at import time: the probe says what to install
    import pynvml
except Exception:  # pragma: no cover - depends on the environment
    pynvml = None

__all__ = ["NvmlMeter", "nvml_status", "visible_gpu_ids", "gpu_entries", "find_gpu",
           "nvml_gpu_count", "NVML_METHODS", "COUNTER_PERIOD_S"]

#: How often NVML updates a GPU's energy counter (s): a shorter window is read by power.
COUNTER_PERIOD_S = 0.1

#: How a GPU's energy is read: the counter where it has one (``auto``), or always by
#: integrating polled power (``power``: for comparing the two), or the counter only.
NVML_METHODS = ("auto", "counter", "power")


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


def gpu_entries(cuda_indices: Sequence[int] | None,
                visible: Sequence[str] | None | str = "env") -> list[str] | None:
    """The ``CUDA_VISIBLE_DEVICES`` entries of this process's devices ``cuda:i`` for each
    i of ``cuda_indices`` (NVML indices where the variable is unset); None: every visible
    GPU, as :func:`visible_gpu_ids`. ``visible``: the variable's entries (default: read
    it; None: unset).

    Raises:
        MeterError: an index past the visible GPUs.

    Example:
        >>> gpu_entries([1], visible=["3", "GPU-8a1b"]), gpu_entries([], visible=["3"])
        (['GPU-8a1b'], [])
        >>> gpu_entries([1], visible=None), gpu_entries(None, visible=None)
        (['1'], None)
    """
    if visible == "env":
        visible = visible_gpu_ids()
    if cuda_indices is None:
        return None if visible is None else list(visible)
    if visible is None:
        return [str(i) for i in cuda_indices]
    for i in cuda_indices:
        if not 0 <= i < len(visible):
            raise MeterError(f"cuda:{i} is not among the visible GPUs "
                             f"(CUDA_VISIBLE_DEVICES={','.join(visible)})")
    return [visible[i] for i in cuda_indices]


class _Gpu(NamedTuple):
    label: str  # the entry it was found by: "gpu1", "GPU-...", "MIG-..."
    handle: Any  # the physical GPU's handle (a MIG instance's parent)
    mig: bool


def _uuid(handle: Any) -> str:
    uuid = pynvml.nvmlDeviceGetUUID(handle)
    return uuid.decode() if isinstance(uuid, bytes) else uuid


def nvml_gpu_count() -> int:
    """Initialise NVML and count this machine's GPUs (no CUDA call).

    Raises:
        ModuleNotFoundError: nvidia-ml-py is not installed.
        pynvml.NVMLError: NVML is not usable here (no driver, no GPU).
    """
    if pynvml is None:
        raise ModuleNotFoundError("nvidia-ml-py is not installed: pip install nvidia-ml-py")
    pynvml.nvmlInit()
    return pynvml.nvmlDeviceGetCount()


def find_gpu(entry: str) -> tuple[Any, bool]:
    """The NVML handle of the physical GPU a ``CUDA_VISIBLE_DEVICES`` entry names, and
    whether the entry is a MIG instance of it. NVML must be initialised.

    Raises:
        pynvml.NVMLError: NVML cannot find it.
        ValueError: the entry is neither an index nor a UUID.
    """
    if entry.isdigit():
        return pynvml.nvmlDeviceGetHandleByIndex(int(entry)), False
    if entry.startswith("MIG-GPU-"):  # the CUDA 11.0 form: MIG-GPU-<uuid>/<gi>/<ci>
        return _by_uuid(entry.removeprefix("MIG-").split("/")[0]), True
    if entry.startswith("MIG-"):
        instance = pynvml.nvmlDeviceGetHandleByUUID(entry)
        return pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(instance), True
    if entry.startswith("GPU-"):
        return _by_uuid(entry), False
    raise ValueError(f"GPU {entry!r} is neither an index nor a UUID (GPU-... or MIG-...)")


def _by_uuid(uuid: str) -> Any:
    """A GPU by its full UUID, or by a unique prefix of it (which CUDA accepts too)."""
    try:
        return pynvml.nvmlDeviceGetHandleByUUID(uuid)
    except pynvml.NVMLError:
        matches = [h for h in map(pynvml.nvmlDeviceGetHandleByIndex,
                                  range(pynvml.nvmlDeviceGetCount()))
                   if _uuid(h).startswith(uuid)]
        if len(matches) != 1:
            raise
        return matches[0]


def _gpus(cuda_indices: Sequence[int] | None = None) -> list[_Gpu]:
    """The physical GPUs to read, each once. Raises pynvml.NVMLError, MeterError."""
    entries = gpu_entries(cuda_indices)
    if entries is None:
        entries = [str(i) for i in range(pynvml.nvmlDeviceGetCount())]
    gpus: dict[str, _Gpu] = {}
    for entry in entries:
        try:
            handle, mig = find_gpu(entry)
        except ValueError as err:
            raise MeterError(f"nvml meter: {err}") from None
        label = f"gpu{entry}" if entry.isdigit() else entry
        gpus.setdefault(_uuid(handle), _Gpu(label, handle, mig))
    return list(gpus.values())


def _has_energy_counter(handle: Any) -> bool:
    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError:
        return False
    return True


def _has_power(handle: Any) -> bool:
    try:
        pynvml.nvmlDeviceGetPowerUsage(handle)
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
        gpus = _gpus()
    except Exception as err:
        return Availability(False, f"NVML not usable (no NVIDIA driver or GPU?): {err}")
    if not gpus:
        return Availability(False, "no GPU visible (CUDA_VISIBLE_DEVICES="
                                   f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    try:
        kinds = [f"{g.label}: {'energy counter' if _has_energy_counter(g.handle) else 'power'}"
                 for g in gpus]
    except Exception as err:
        return Availability(False, f"NVML could not query the GPUs: {err}")
    return Availability(True, ", ".join(kinds))


class NvmlMeter(Meter):
    """GPU energy from NVML (hardware figures, whole-GPU scope).

    Args:
        sample_interval_s: power-sampling period on GPUs read by power; 0 samples only
            at start, lap and stop (tests call :meth:`sample` themselves).
        clock: seconds clock for the power samples (tests pass a fake).
        cuda_indices: read only this process's devices ``cuda:i`` (the GPU a trial trains
            on); None: every visible GPU.
        method: ``"auto"`` (the energy counter where a GPU has one, polled power
            otherwise), ``"counter"`` or ``"power"`` (see :data:`NVML_METHODS`).
        share_across_processes: split each GPU's counter with the other processes whose
            windows are open on it (a ledger file per GPU, :mod:`ecotune.energy._ledger`);
            False books each window the whole GPU's counter (``"unsplit"``).

    Raises:
        MeterError: NVML or a GPU is not available here, ``cuda_indices`` is empty or
            names a GPU that is not visible, or a GPU cannot be read as ``method`` asks.
    """

    name = "nvml"
    devices = ("gpu",)

    def __init__(self, sample_interval_s: float = 0.1,
                 clock: Callable[[], float] = time.perf_counter,
                 cuda_indices: Sequence[int] | None = None, method: str = "auto",
                 share_across_processes: bool = True) -> None:
        super().__init__()
        if method not in NVML_METHODS:
            raise ValueError(f"unknown nvml method {method!r}; expected one of "
                             f"{list(NVML_METHODS)}")
        status = nvml_status()
        if not status.available:
            raise MeterError(f"the nvml meter is not available here: {status.reason}")
        if cuda_indices is not None and not cuda_indices:
            raise MeterError("the nvml meter measures GPUs, and this work uses none (device "
                             "cpu): measure with meter 'auto', or every visible GPU with "
                             "[energy] gpus = \"visible\"")
        self.sample_interval_s = sample_interval_s
        self.clock = clock
        self.method = method
        self.share_across_processes = share_across_processes
        if method == "power":
            self.name = "nvml-power"
        try:
            gpus = _gpus(cuda_indices)
            counted = [method != "power" and _has_energy_counter(g.handle) for g in gpus]
            if method == "counter" and not all(counted):
                raise MeterError("nvml meter: GPU(s) without an energy counter (before "
                                 "Volta): " + ", ".join(g.label for g, c in zip(gpus, counted)
                                                         if not c))
            self._counter = [g for g, c in zip(gpus, counted) if c]
            self._uuids = [_uuid(g.handle) for g in self._counter]
            self._sampled = [g for g, c in zip(gpus, counted) if not c]
            for gpu in self._sampled:
                pynvml.nvmlDeviceGetPowerUsage(gpu.handle)
        except pynvml.NVMLError as err:
            raise MeterError(f"nvml meter: a GPU reads neither energy nor power: {err}") \
                from err
        self.gpus = tuple(g.label for g in gpus)
        self._warnings = (f"nvml: gpu_j covers the whole GPU(s) {', '.join(self.gpus)}: "
                          "split with ecotune's windows in other processes on them, and "
                          "including the draw of any other work using them",)
        if any(g.mig for g in gpus):
            self._warnings += ("nvml: a MIG instance has no energy reading of its own: "
                               "gpu_j covers its whole GPU, every instance of it",)
        #: The counter's update period: a shorter window is read by power.
        self.counter_period_s = COUNTER_PERIOD_S
        # GPUs read by counter whose power is readable too: polled, as a fallback.
        self._backup = [g for g in self._counter if _has_power(g.handle)]
        self._polled = self._sampled + self._backup
        self._lock = threading.Lock()
        self._mj0: list[int] = []
        self._last_mj: list[int] = []
        self._backwards: list[str | None] = []
        self._sample_t_s = 0.0
        self._sample_w: list[float] = []
        self._sampled_j: list[float] = []  # per polled GPU
        self._t0_s = 0.0
        self._stop_event = threading.Event()
        self._sampler: threading.Thread | None = None
        # Per counter GPU: its ledger (None: booked whole), the account when the backend
        # window opened, the last settlement, and why it could not be split (if so).
        self._ledgers: list[GpuLedger | None] = []
        self._account0_j: list[float] = []
        self._settled: list[Settlement | None] = []
        self._unsplit: list[str | None] = []

    def _power_w(self) -> list[float]:
        return [pynvml.nvmlDeviceGetPowerUsage(g.handle) / 1000.0 for g in self._polled]

    def _check_counters(self) -> list[int]:
        """Read each counter; note one that went backwards since its last read."""
        now_mj = [pynvml.nvmlDeviceGetTotalEnergyConsumption(g.handle) for g in self._counter]
        with self._lock:
            for i, (gpu, mj) in enumerate(zip(self._counter, now_mj)):
                if mj < self._last_mj[i] and self._backwards[i] is None:
                    self._backwards[i] = (f"{gpu.label}'s energy counter went backwards "
                                          f"({self._last_mj[i]} -> {mj} mJ: a driver "
                                          "reload or GPU reset?)")
                self._last_mj[i] = mj
        return now_mj

    def sample(self) -> None:
        """Take one power sample of each polled GPU and integrate it; check the counters."""
        if not self._polled and not self._counter:
            return
        try:
            power_w = self._power_w()
            if self._counter:
                self._check_counters()
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
            self._mj0 = [pynvml.nvmlDeviceGetTotalEnergyConsumption(g.handle)
                         for g in self._counter]
            self._sample_w = self._power_w()
        except pynvml.NVMLError as err:
            raise MeterError(f"nvml meter: could not start: {err}") from err
        self._last_mj = list(self._mj0)
        self._backwards = [None] * len(self._counter)
        self._open_ledgers()
        self._sample_t_s = self._t0_s = self.clock()
        self._sampled_j = [0.0] * len(self._polled)
        if self._polled and self.sample_interval_s > 0:
            self._stop_event.clear()
            self._sampler = threading.Thread(target=self._sample_loop, daemon=True,
                                             name="ecotune-nvml-sampler")
            self._sampler.start()

    # -- the ledgers: one GPU's counter split among the processes reading it -------------

    def _open_ledgers(self) -> None:
        n = len(self._counter)
        self._ledgers, self._unsplit = [None] * n, [None] * n
        self._settled = [None] * n
        self._account0_j = [0.0] * n
        for i, uuid in enumerate(self._uuids):
            if not self.share_across_processes:
                self._unsplit[i] = "share_across_processes=False"
                continue
            try:
                self._ledgers[i] = GpuLedger(uuid)
            except OSError as err:
                self._unsplit[i] = f"its ledger could not be opened ({err})"
        self._settle(1)
        self._account0_j = [s.account_j if s is not None else 0.0 for s in self._settled]

    def _settle(self, n_windows: int) -> None:
        """Settle each GPU's ledger with this meter's ``n_windows`` open windows."""
        for i, (gpu, ledger) in enumerate(zip(self._counter, self._ledgers)):
            if ledger is None:
                continue
            handle = gpu.handle
            try:
                self._settled[i] = ledger.settle(
                    lambda h=handle: pynvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000.0,
                    n_windows)
            except OSError as err:
                self._ledgers[i] = None
                self._unsplit[i] = f"its ledger could not be read ({err})"
            except pynvml.NVMLError as err:
                raise MeterError(f"nvml meter: could not read the energy counter: {err}") \
                    from err

    def _windows_changed(self, n_windows: int) -> None:
        self._settle(n_windows)

    def _read(self, n_windows: int = 1) -> Measurement:
        self.sample()
        try:
            now_mj = self._check_counters() if self._counter else []
        except pynvml.NVMLError as err:
            raise MeterError(f"nvml meter: could not read the energy counter: {err}") from err
        self._settle(n_windows)
        with self._lock:
            duration_s = self.clock() - self._t0_s
            by_power = dict(zip((g.label for g in self._polled), self._sampled_j))
            gpu_j = sum(self._sampled_j[:len(self._sampled)])
            warnings = self._warnings
            unsplit = [g.label for g in self._sampled]  # by power: no shared counter
            shared = False
            for i, (gpu, mj0, mj, backwards) in enumerate(zip(self._counter, self._mj0, now_mj,
                                                              self._backwards)):
                short = duration_s < self.counter_period_s
                if backwards is None and not short:
                    settled = self._settled[i]
                    if self._ledgers[i] is not None and settled is not None:
                        gpu_j += settled.account_j - self._account0_j[i]
                        shared = shared or settled.shared
                    else:
                        gpu_j += (mj - mj0) / 1000.0
                        unsplit.append(gpu.label)
                        warnings += (f"nvml: {gpu.label} is booked whole, not split with "
                                     f"other processes using it: {self._unsplit[i]}",)
                    continue
                unsplit.append(gpu.label)
                why = backwards or (f"the window ({duration_s * 1000:.0f} ms) is shorter "
                                    f"than {gpu.label}'s energy counter update period "
                                    f"({self.counter_period_s * 1000:.0f} ms)")
                if gpu.label not in by_power:
                    raise MeterError(f"nvml meter: {why}, and its power cannot be read: "
                                     "this window cannot be measured")
                gpu_j += by_power[gpu.label]
                warnings += (f"nvml: {why}: measured by polled power instead "
                             "(NVML's power reading may be a 1 s mean)",)
        if unsplit:
            attribution = names.ATTRIBUTION_UNSPLIT
        else:
            attribution = names.ATTRIBUTION_SHARED if shared else names.ATTRIBUTION_EXCLUSIVE
        return Measurement(
            duration_s=duration_s, energy_j=gpu_j, cpu_j=None,
            gpu_j=gpu_j, ram_j=None, co2_g=None,
            meter=self.name, is_estimate=False, scope="machine", sources={"gpu": self.name},
            warnings=warnings, attribution=attribution)

    def _stop(self) -> Measurement:
        if self._sampler is not None:
            self._stop_event.set()
            self._sampler.join()
            self._sampler = None
        try:
            return self._read(0)  # 0: this meter leaves the GPUs' ledgers
        except BaseException:
            self._leave_ledgers()  # no share of the others' work once this window is gone
            raise

    def _leave_ledgers(self) -> None:
        for ledger in self._ledgers:
            if ledger is not None:
                try:
                    ledger.leave()
                except OSError:
                    pass

    def _lap(self, exact: bool = False) -> Measurement:
        """The open window so far (a plain read); the window stays open."""
        return self._read(max(len(self._windows), 1))
