"""An exact fake of the few ``pynvml`` calls ecotune makes, for tests without a GPU.

GPUs are list positions: ``energy_mj[i]`` is GPU i's total-energy counter (None: no
counter, a GPU before Volta), ``power_mw[i]`` its power (None: not readable). Tests set
them before each read, so every figure is exact; those counters update at once
(``refresh_s = 0``). MIG instances map a ``MIG-...`` UUID to their parent GPU; an
instance reads neither energy nor power itself (as on real GPUs).

:class:`TimedFakeNvml` models what real GPUs do in time: the counter updates only every
``refresh_s`` (NVML: about 100 ms), the power reading is the mean over the last
``average_s`` (1 s on Ampere and newer), and a counter can be reset to 0 (a driver reload)
or stepped backwards.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest


class FakeNVMLError(Exception):
    pass


class FakeNvml:
    NVMLError = FakeNVMLError
    #: How often the counters update (s); 0: whenever the test sets them.
    refresh_s = 0.0

    def __init__(self, energy_mj: list[int | None], power_mw: list[int | None],
                 migs: dict[str, int] | None = None) -> None:
        self.energy_mj = energy_mj
        self.power_mw = power_mw
        self.uuids = [f"GPU-{i}{i}{i}{i}aaaa-bbbb-cccc-dddd-{i:012d}"
                      for i in range(len(energy_mj))]
        self.migs = dict(migs or {})
        self.reads = 0  # energy and power reads, to check that a GPU is read once

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.energy_mj)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if index >= len(self.energy_mj):
            raise FakeNVMLError("Invalid Argument")
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> int | tuple[str, str]:
        if uuid in self.uuids:
            return self.uuids.index(uuid)
        if uuid in self.migs:
            return ("mig", uuid)
        raise FakeNVMLError("Not Found")

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: tuple[str, str]) -> int:
        return self.migs[handle[1]]

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return self.uuids[handle]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        if not isinstance(handle, int) or self.energy_mj[handle] is None:
            raise FakeNVMLError("Not Supported")
        self.reads += 1
        return self.energy_mj[handle]

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        if not isinstance(handle, int) or self.power_mw[handle] is None:
            raise FakeNVMLError("Not Supported")
        self.reads += 1
        return self.power_mw[handle]


class TimedFakeNvml(FakeNvml):
    """GPUs drawing ``watts[i]`` (changed with :meth:`draw`) on a clock the test moves
    (:meth:`advance`; pass ``clock=fake.clock`` to the meter).

    The counter reads the true energy as of its last update (every ``refresh_s``) plus
    ``offset_mj[i]`` (:meth:`reset`, :meth:`step_back`); the power reads the mean over the
    last ``average_s`` (0: the instantaneous draw). Figures are exact: power is
    piecewise constant between changes.
    """

    def __init__(self, watts: list[float], refresh_s: float = 0.1, average_s: float = 0.0,
                 counters: bool = True) -> None:
        super().__init__([0 if counters else None] * len(watts), [0] * len(watts))
        self.refresh_s = refresh_s
        self.average_s = average_s
        self.now_s = 0.0
        self._segments: list[tuple[float, list[float]]] = [(0.0, list(watts))]
        self.offset_mj = [0.0] * len(watts)

    def clock(self) -> float:
        return self.now_s

    def advance(self, dt_s: float) -> None:
        self.now_s += dt_s

    def draw(self, i: int, watts: float) -> None:
        """GPU i draws ``watts`` from now on."""
        levels = list(self._segments[-1][1])
        levels[i] = watts
        self._segments.append((self.now_s, levels))

    def energy_j(self, i: int, t_s: float) -> float:
        """GPU i's true energy from 0 to ``t_s``."""
        total = 0.0
        for k, (start_s, levels) in enumerate(self._segments):
            end_s = self._segments[k + 1][0] if k + 1 < len(self._segments) else t_s
            total += levels[i] * max(0.0, min(end_s, t_s) - start_s)
        return total

    def reset(self, i: int) -> None:
        """GPU i's counter restarts from 0 now (a driver reload)."""
        self.offset_mj[i] = -self._counter_true_mj(i)

    def step_back(self, i: int, mj: float) -> None:
        self.offset_mj[i] -= mj

    def _counter_true_mj(self, i: int) -> float:
        # The last update (1e-9: a clock moved in steps of 0.1 s lands on the update).
        updated_s = (math.floor(self.now_s / self.refresh_s + 1e-9) * self.refresh_s
                     if self.refresh_s else self.now_s)
        return self.energy_j(i, updated_s) * 1000.0

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        if not isinstance(handle, int) or self.energy_mj[handle] is None:
            raise FakeNVMLError("Not Supported")
        self.reads += 1
        return round(self._counter_true_mj(handle) + self.offset_mj[handle])

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        if not isinstance(handle, int):
            raise FakeNVMLError("Not Supported")
        self.reads += 1
        if self.average_s:
            start_s = self.now_s - self.average_s
            mean_w = (self.energy_j(handle, self.now_s) - self.energy_j(handle, start_s)) \
                / self.average_s  # before 0 the GPU drew nothing
            return round(mean_w * 1000.0)
        levels = [lv for t, lv in self._segments if t <= self.now_s][-1]
        return round(levels[handle] * 1000.0)


class FileFakeNvml(FakeNvml):
    """GPUs whose energy counters live in a file, so that several processes read one
    machine's GPUs, as real ones do: the test writes the counters
    (:func:`write_counters`) between the workers' events; every read reads the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__(self._counters(), [None] * len(self._counters()))

    def _counters(self) -> list[int | None]:
        return json.loads(self.path.read_text())

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        self.energy_mj = self._counters()
        return super().nvmlDeviceGetTotalEnergyConsumption(handle)


def write_counters(path: str | Path, energy_mj: list[int]) -> None:
    """Set every GPU's counter at once (a reader never sees a half-written file)."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(energy_mj))
    os.replace(partial, path)


def install_in_process(fake: FakeNvml, visible: str | None) -> None:
    """:func:`install` for a spawned worker process (no monkeypatch: it exits after)."""
    from ecotune.energy import _nvml

    _nvml.pynvml = fake
    if visible is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
    _nvml.nvml_status.cache_clear()


#: Whether a test installed a fake since the last cleanup (tests/conftest.py).
used = False


def install(monkeypatch: pytest.MonkeyPatch, fake: FakeNvml | None,
            visible: str | None = None) -> FakeNvml | None:
    """Put ``fake`` in place of pynvml (None: "not installed"), with
    ``CUDA_VISIBLE_DEVICES = visible`` (None: unset), and forget cached probes/meters."""
    from ecotune.energy import _nvml, get_meter

    global used
    used = True  # tests/conftest.py forgets what was made from the fake after the test
    monkeypatch.setattr(_nvml, "pynvml", fake)
    # The counters' update period the meter assumes: the fake's own.
    monkeypatch.setattr(_nvml, "COUNTER_PERIOD_S", getattr(fake, "refresh_s", 0.1))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "unset-marker")  # restored after the test
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    _nvml.nvml_status.cache_clear()
    get_meter.cache_clear()
    return fake
