"""A meter's noise on this machine: the coefficient of variation (standard deviation over
mean) of its energy and duration figures over identical windows of a fixed workload."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from ecotune.noise._stats import t_interval

if TYPE_CHECKING:
    from ecotune.energy import Meter

__all__ = ["MeterNoise", "meter_noise", "fixed_workload", "DEFAULT_WINDOWS",
           "WORKLOAD_STEPS"]

#: Windows measured by default (after one unmeasured warm-up run).
DEFAULT_WINDOWS = 5
#: Training steps of the fixed workload: 0.3 s to 2 s on the shared 2-core machine (load).
WORKLOAD_STEPS = 150


@dataclasses.dataclass(frozen=True)
class MeterNoise:
    """What ``windows`` identical windows of the fixed workload read on ``meter``."""

    meter: str
    windows: int
    energy_cv: float
    duration_cv: float
    mean_energy_j: float
    mean_duration_s: float
    is_estimate: bool

    def as_attr(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_attr(cls, data: dict[str, Any]) -> MeterNoise:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def fixed_workload(steps: int = WORKLOAD_STEPS) -> float:
    """Train a small MLP on fixed random data for ``steps`` steps, on the CPU, one
    thread: the same arithmetic every call (a miniature of a built-in-trainer epoch).
    Returns the last loss, so that nothing is optimised away."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine's other threads change less between windows
    try:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(64, 64, generator=generator)
        y = torch.randint(0, 10, (64,), generator=generator)
        model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 10))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        loss = torch.zeros(())
        for _ in range(steps):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        return float(loss.detach())
    finally:
        torch.set_num_threads(threads)


def meter_noise(meter: str | Meter, windows: int = DEFAULT_WINDOWS,
                steps: int = WORKLOAD_STEPS) -> MeterNoise:
    """Measure ``windows`` windows of :func:`fixed_workload` on ``meter`` (a backend name
    or a meter) after one unmeasured warm-up run, and return their variation.

    Raises:
        ValueError: fewer than 2 windows (a spread needs two).
        ecotune.energy.MeterError: the meter is not available here.
    """
    if windows < 2:
        raise ValueError(f"windows must be >= 2 to measure a spread (got {windows})")
    from ecotune.energy import get_meter

    meter_obj = get_meter(meter) if isinstance(meter, str) else meter
    meter_obj.warm_up()
    fixed_workload(steps)  # first-call costs (allocation, kernels) are no window's
    readings = []
    for _ in range(windows):
        with meter_obj.window() as window:
            fixed_workload(steps)
        readings.append(window.measurement)
    energy = t_interval([m.energy_j for m in readings])
    duration = t_interval([m.duration_s for m in readings])
    return MeterNoise(readings[-1].meter, windows, _cv(energy.std, energy.mean),
                      _cv(duration.std, duration.mean), energy.mean, duration.mean,
                      any(m.is_estimate for m in readings))


def _cv(std: float, mean: float) -> float:
    return std / mean if mean > 0 and math.isfinite(std) else math.nan
