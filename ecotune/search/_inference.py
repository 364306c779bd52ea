"""A trained model's inference energy, measured: the model runs on a sample batch, again and
again, inside a meter window of its own (never the trial's training window).

The hardware models (``ecotune.energy.hardware``: ASIC, Eyeriss) estimate what one
inference would cost on an accelerator; this measures what it costs here, on the machine
and device the trial trained on, with the trial's own meter (so the figure is a
measurement or an estimate exactly as the meter's figures are: ``is_estimate``).

One untimed batch first: it checks that the sample fits the model (a one-line error
otherwise, before anything is stored) and pays the one-off costs (allocations, kernel
selection) that a deployed model pays once, not per prediction. Then up to
:data:`INFERENCE_BATCHES` batches, stopping early once :data:`INFERENCE_MAX_S` seconds
have passed, so a large model on a slow device costs the search little.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ecotune.devices import synchronizer

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ecotune.energy import Meter

__all__ = ["INFERENCE_BATCHES", "INFERENCE_MAX_S", "measure_inference_energy", "check_fits"]

#: Batches a measurement runs at most (each one the whole sample).
INFERENCE_BATCHES = 20
#: Seconds after which it stops starting batches. With the defaults the measurement stays
#: under 5 % of a quickstart trial (docs/api.md: measured inference energy).
INFERENCE_MAX_S = 0.05


def check_fits(model: nn.Module, sample_inputs: torch.Tensor) -> None:
    """Run ``model`` once on ``sample_inputs`` (on the model's device, eval mode, no
    gradients), turning the framework's error into one line naming the shapes.

    Raises:
        ValueError: the sample is not a non-empty tensor, or the model cannot run on it.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> check_fits(nn.Linear(4, 2), torch.ones(3, 5))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: record_model: a sample of shape (3, 5) does not fit the model (Linear): ...
    """
    _run(model, _on_model_device(model, sample_inputs), 1)


def measure_inference_energy(model: nn.Module, sample_inputs: torch.Tensor, meter: Meter, *,
                             batches: int = INFERENCE_BATCHES,
                             max_s: float = INFERENCE_MAX_S) -> dict[str, Any]:
    """Measure ``model``'s inference on ``sample_inputs`` with ``meter`` (JSON-safe, for
    the trial's ``inference`` attribute).

    Keys: ``energy_per_sample_j`` (the ``inference_energy_measured_j`` objective),
    ``latency_per_batch_s``, ``batches`` (run), ``batch_size``, ``energy_j`` and
    ``duration_s`` (the whole window), ``meter``, ``is_estimate`` (the meter's label:
    True where it models power rather than reading a counter), ``device``.

    Raises:
        ValueError: the sample does not fit the model (nothing measured), or ``batches``
            < 1.
    """
    if batches < 1:
        raise ValueError(f"measure_inference: batches must be >= 1 (got {batches})")
    sample = _on_model_device(model, sample_inputs)
    device = sample.device
    sync = synchronizer(device)
    _run(model, sample, 1)  # fits? and one-off costs, outside the window
    sync()
    handle = meter.open()
    t0 = time.perf_counter()
    try:
        ran = _run(model, sample, batches, sync=sync, until_s=t0 + max_s)
    finally:
        measurement = handle.close()
    return {
        "energy_per_sample_j": measurement.energy_j / (ran * len(sample)),
        "latency_per_batch_s": measurement.duration_s / ran,
        "batches": ran,
        "batch_size": len(sample),
        "energy_j": measurement.energy_j,
        "duration_s": measurement.duration_s,
        "meter": measurement.meter,
        "is_estimate": measurement.is_estimate,
        "device": str(device),
    }


def _on_model_device(model: nn.Module, sample_inputs: Any) -> torch.Tensor:
    import torch

    if not isinstance(sample_inputs, torch.Tensor) or sample_inputs.dim() == 0 \
            or len(sample_inputs) == 0:
        raise ValueError("record_model: sample_inputs must be a non-empty batch tensor "
                         f"(got {type(sample_inputs).__name__}"
                         f"{_shape(sample_inputs)})")
    parameter = next(model.parameters(), None)
    return sample_inputs if parameter is None else sample_inputs.to(parameter.device)


def _shape(x: Any) -> str:
    shape = getattr(x, "shape", None)
    return "" if shape is None else f" of shape {tuple(shape)}"


def _run(model: nn.Module, sample: torch.Tensor, batches: int, *, sync=None,
         until_s: float | None = None) -> int:
    """Run ``batches`` forward passes (fewer once ``until_s`` has passed); the count."""
    import torch

    was_training = model.training
    model.eval()
    ran = 0
    try:
        with torch.no_grad():
            while ran < batches:
                try:
                    model(sample)
                except (RuntimeError, ValueError, TypeError, IndexError) as err:
                    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                    raise ValueError(
                        f"record_model: a sample of shape {tuple(sample.shape)} does not "
                        f"fit the model ({type(model).__name__}): {first}") from None
                ran += 1
                if until_s is not None and ran < batches:
                    if sync is not None:
                        sync()  # the clock must see the device's work, not its queue
                    if time.perf_counter() >= until_s:
                        break
            if sync is not None:
                sync()
    finally:
        model.train(was_training)
    return ran
