"""The counters CodeCarbon reads (RAPL, NVML), split among the worker processes of one
machine.

CodeCarbon reads its counters itself, in every process, whatever its ``tracking_mode``
(that mode changes only its models): the RAPL package files under ``/sys/class/powercap``
(``intel_rapl`` mode) and each GPU's NVML energy counter. Booked whole, each worker would
be charged every other worker's draw. Here ecotune reads the same counters, through
CodeCarbon's own handles (the files its ``IntelRAPL`` found, its ``NvidiaGPUDevice``
readers), under a ledger per counter (:class:`CounterLedger`, shared with every process's
meters): each advance of a counter is split among the windows open on it in every
process, and the meter reports this process's account instead of CodeCarbon's whole
delta. The rule is the in-process split's: a RAPL counter by the CPU seconds each process
used over the interval (CPU energy follows CPU time), a GPU's by open windows (its draw
follows no process's CPU time; the GPU ledger is the one ecotune's NVML meter uses, so
CodeCarbon and NVML windows on one GPU split it too). The workers' figures then add up to
one reading of each counter, not one per worker.

A RAPL step larger than the package could draw since the last settlement (1000 W x the
time) is a reset, not a wrap: it counts nothing, and the window says its figure is low.
An account covers every draw on the device while any ecotune window is open (other
programs' too): the scope stays ``machine``; ``attribution`` is ``shared`` where another
process had windows open, ``exclusive`` otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

from ecotune.energy._ledger import CounterLedger, Settlement

__all__ = ["SharedCounters", "Counter", "rapl_counters", "gpu_counters"]


#: A generous bound on what one RAPL domain draws (W), as ecotune's RAPL meter uses: a
#: larger step between two settlements is a reset, not a wrap.
RAPL_MAX_W = 1000.0


class Counter(NamedTuple):
    """One counter CodeCarbon reads: the window part it feeds (``cpu``, ``gpu``), its
    ledger, a reader (joules), where it wraps (None: it does not), whether it is split by
    CPU time, and the most its device draws (W; None: unbounded)."""

    part: str
    ledger: CounterLedger
    read_j: Callable[[], float]
    wrap_j: float | None
    by_cpu: bool
    max_power_w: float | None = None


def _read_uj(path: str) -> int:
    with open(path, encoding="ascii") as file:
        return int(file.read().strip())


def rapl_counters(tracker) -> list[Counter]:
    """The RAPL files CodeCarbon's tracker reads (none where its CPU is not in
    ``intel_rapl`` mode), counters it suspects of mirroring another left out as it leaves
    them out.

    Raises:
        OSError, ValueError: a ledger cannot be opened or a counter's range read.
    """
    for hardware in getattr(tracker, "_hardware", ()):
        if type(hardware).__name__ == "CPU" and getattr(hardware, "_mode", None) == "intel_rapl":
            rapl = getattr(hardware, "_intel_interface", None)
            mirrored = getattr(rapl, "_mirrored_candidates", {}) or {}
            return [Counter("cpu", CounterLedger("rapl:" + os.path.realpath(f.path)),
                            lambda p=f.path: _read_uj(p) * 1e-6,
                            _read_uj(f.max_path) * 1e-6 or None, True, RAPL_MAX_W)
                    for f in getattr(rapl, "_rapl_files", ()) if f.path not in mirrored]
    return []


def _gpu_read_j(device) -> Callable[[], float]:
    def read_j() -> float:
        mj = device._get_total_energy_consumption()
        if mj is None:
            raise OSError(f"GPU {device.gpu_index}'s energy counter could not be read")
        return mj / 1000.0

    return read_j


def gpu_counters(tracker) -> tuple[list[Counter], str | None]:
    """The NVML counters of the GPUs CodeCarbon's tracker reads, and why they cannot be
    split (None: they can, or it reads none): all or none, since CodeCarbon reports one
    figure for all its GPUs; a GPU it reads by power, or not through NVML, keeps it whole.

    Raises:
        OSError: a ledger cannot be opened.
    """
    for hardware in getattr(tracker, "_hardware", ()):
        if type(hardware).__name__ != "GPU":
            continue
        try:  # CodeCarbon's internals, as of 3.3: anything else is booked whole
            ids = set(hardware._get_gpu_ids())
            devices = [d for d in hardware.devices.devices if d.gpu_index in ids]
        except (AttributeError, TypeError) as err:
            return [], f"its GPU reader is not one ecotune can read through ({err})"
        for device in devices:
            if type(device).__name__ != "NvidiaGPUDevice":
                return [], f"GPU {device.gpu_index} is not read through NVML"
            if not getattr(device, "_has_counter", False) or device._use_power_fallback:
                return [], f"GPU {device.gpu_index} is read by power, not by its counter"
        return [Counter("gpu", CounterLedger(device._get_uuid()), _gpu_read_j(device), None,
                        False) for device in devices], None
    return [], None


class SharedCounters:
    """This meter's account on the ledger of each counter CodeCarbon reads."""

    def __init__(self, counters: list[Counter]) -> None:
        self.counters = counters
        self.parts = frozenset(c.part for c in counters)
        self._settled: list[Settlement | None] = [None] * len(counters)
        self._taken_j = dict.fromkeys(self.parts, 0.0)

    def settle(self, n_windows: int) -> None:
        """Settle every counter's ledger with this meter's ``n_windows`` open windows (0:
        it leaves the ledgers).

        Raises:
            OSError: a ledger or a counter cannot be read.
        """
        for i, c in enumerate(self.counters):
            self._settled[i] = c.ledger.settle(c.read_j, n_windows, wrap_j=c.wrap_j,
                                               weigh_by_cpu=c.by_cpu,
                                               max_power_w=c.max_power_w)

    def leave(self) -> None:
        """Leave without a settlement (after an error)."""
        for c in self.counters:
            try:
                c.ledger.leave()
            except OSError:
                pass

    @property
    def resets(self) -> list[str]:
        """The counters whose ledger took a step for a reset (energy lost) since joining."""
        return [c.ledger.name for c in self.counters if c.ledger.resets]

    @property
    def shared(self) -> bool:
        """Whether another process had windows open on a counter since this one joined."""
        return any(s.shared for s in self._settled if s is not None)

    def take_j(self) -> dict[str, float]:
        """Joules booked to each part since the last take (a CodeCarbon task's share)."""
        now_j = dict.fromkeys(self.parts, 0.0)
        for c, s in zip(self.counters, self._settled):
            if s is not None:
                now_j[c.part] += s.account_j
        taken = {part: now_j[part] - self._taken_j[part] for part in self.parts}
        self._taken_j = now_j
        return taken
