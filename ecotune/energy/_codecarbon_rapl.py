"""The RAPL counters CodeCarbon reads, split among the worker processes of one machine.

CodeCarbon reads RAPL itself (``intel_rapl`` mode: the package domains under
``/sys/class/powercap``, whatever its ``tracking_mode``), in every process, so each worker
would book the whole package. Here ecotune reads the same files CodeCarbon found (its
``IntelRAPL._rapl_files``) through a ledger per file (:class:`CounterLedger`, shared with
every process's CodeCarbon meter): each advance of a counter is split among the windows
open on it in every process by the CPU seconds each process used over the interval (CPU
energy follows CPU time, the in-process split's rule for CPU), and the meter reports this
process's account instead of CodeCarbon's whole-package delta. The workers' CPU figures
then add up to one reading of the counters, not one per worker.

The account covers every draw on the package while any ecotune window is open (other
programs' too): the scope stays ``machine``; ``attribution`` is ``shared`` where another
process had windows open, ``exclusive`` otherwise.
"""

from __future__ import annotations

import os

from ecotune.energy._ledger import CounterLedger, Settlement

__all__ = ["RaplCounters", "codecarbon_rapl_files"]


def codecarbon_rapl_files(tracker) -> list[tuple[str, str]]:
    """The ``(energy_uj, max_energy_range_uj)`` paths CodeCarbon's tracker reads RAPL
    from (none where its CPU is not in ``intel_rapl`` mode), counters it suspects of
    mirroring another left out as it leaves them out."""
    for hardware in getattr(tracker, "_hardware", ()):
        if type(hardware).__name__ == "CPU" and getattr(hardware, "_mode", None) == "intel_rapl":
            rapl = getattr(hardware, "_intel_interface", None)
            mirrored = getattr(rapl, "_mirrored_candidates", {}) or {}
            return [(f.path, f.max_path) for f in getattr(rapl, "_rapl_files", ())
                    if f.path not in mirrored]
    return []


def _read_uj(path: str) -> int:
    with open(path, encoding="ascii") as file:
        return int(file.read().strip())


class RaplCounters:
    """This meter's account on the ledger of each RAPL file CodeCarbon reads.

    Raises:
        OSError: a ledger cannot be opened, or a counter or its range cannot be read.
    """

    def __init__(self, files: list[tuple[str, str]]) -> None:
        self.files = [path for path, _ in files]
        self._wrap_j = [_read_uj(max_path) * 1e-6 for _, max_path in files]
        self._ledgers = [CounterLedger("rapl:" + os.path.realpath(path)) for path in self.files]
        self._settled: list[Settlement | None] = [None] * len(self.files)
        self._taken_j = 0.0

    def settle(self, n_windows: int) -> None:
        """Settle every file's ledger with this meter's ``n_windows`` open windows (0: it
        leaves the ledgers)."""
        for i, (path, ledger) in enumerate(zip(self.files, self._ledgers)):
            self._settled[i] = ledger.settle(lambda p=path: _read_uj(p) * 1e-6, n_windows,
                                             wrap_j=self._wrap_j[i] or None, weigh_by_cpu=True)

    def leave(self) -> None:
        """Leave without a settlement (after an error)."""
        for ledger in self._ledgers:
            try:
                ledger.leave()
            except OSError:
                pass

    @property
    def account_j(self) -> float:
        """Joules booked to this meter since it joined, over every file."""
        return sum(s.account_j for s in self._settled if s is not None)

    @property
    def shared(self) -> bool:
        """Whether another process had windows open on a counter since this one joined."""
        return any(s.shared for s in self._settled if s is not None)

    def take_j(self) -> float:
        """Joules booked since the last take (a CodeCarbon task's share)."""
        now_j = self.account_j
        taken_j, self._taken_j = now_j - self._taken_j, now_j
        return taken_j
