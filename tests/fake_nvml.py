"""An exact fake of the few ``pynvml`` calls ecotune makes, for tests without a GPU.

GPUs are list positions: ``energy_mj[i]`` is GPU i's total-energy counter (None: no
counter, a GPU before Volta), ``power_mw[i]`` its power (None: not readable). Tests set
them before each read, so every figure is exact. MIG instances map a ``MIG-...`` UUID to
their parent GPU; an instance reads neither energy nor power itself (as on real GPUs).
"""

from __future__ import annotations

import pytest


class FakeNVMLError(Exception):
    pass


class FakeNvml:
    NVMLError = FakeNVMLError

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


def install(monkeypatch: pytest.MonkeyPatch, fake: FakeNvml | None,
            visible: str | None = None) -> FakeNvml | None:
    """Put ``fake`` in place of pynvml (None: "not installed"), with
    ``CUDA_VISIBLE_DEVICES = visible`` (None: unset), and forget cached probes/meters."""
    from ecotune.energy import _nvml, get_meter

    monkeypatch.setattr(_nvml, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "unset-marker")  # restored after the test
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    _nvml.nvml_status.cache_clear()
    get_meter.cache_clear()
    return fake
