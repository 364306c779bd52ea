"""What one training run is given (:class:`TrainConfig`) and what it produces
(:class:`TrainResult`)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ecotune.epochs import EpochRecord

__all__ = ["TrainConfig", "TrainResult"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every knob of one training run. Read back with ``dataclasses.asdict``."""

    model: str = "cnn"
    width: float = 1.0
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "adam"
    weight_decay: float = 0.0
    eat_lambda: float = 0.0
    eat_sigma: float = 1e-4
    freeze_at_epoch: int | None = None
    low_precision_at_epoch: int | None = None
    early_stopping_patience: int | None = None
    energy_budget: float | None = None
    budget_every_batches: int = 10
    budget_schedule: str = "none"
    budget_warmup_epochs: int = 1
    input_keep_ratio: float | None = None
    threads: int = 1
    #: "auto" (the first visible CUDA GPU if there is one, else the CPU), "cpu", "cuda",
    #: "cuda:N": a fixed setting, not a knob (:mod:`ecotune.devices`).
    device: str = "auto"
    #: Autocast type once low precision is on: "auto", "float16" or "bfloat16".
    low_precision_dtype: str = "auto"


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a training run produced. ``val_accuracy`` is the search's accuracy (of the
    best epoch when patience early stopping restored it); the test split was used for
    nothing but ``test_accuracy`` and ``activation_density`` (one pass; both None where
    it was not evaluated: ``train(..., test=False)``). ``curve`` has no energy: the
    measurement window that wraps training records the energy of each epoch
    (:mod:`ecotune.search`)."""

    val_accuracy: float
    test_accuracy: float | None
    activation_density: float | None
    n_params: int
    macs: int
    epochs_run: int
    stop_reason: str
    curve: tuple[EpochRecord, ...]
    model: nn.Module = dataclasses.field(repr=False, compare=False)
    #: 0/1 mask the inputs are multiplied by (input masking), or None.
    input_mask: torch.Tensor | None = dataclasses.field(default=None, repr=False,
                                                        compare=False)
    #: Estimated inference energy over the dense model's (Eyeriss model), with a budget.
    budget_energy_ratio: float | None = None
    #: The device it trained on (``model`` is left there).
    device: torch.device = dataclasses.field(default=torch.device("cpu"), compare=False)
    #: The autocast type low precision used ("float16", "bfloat16"), None if never on.
    low_precision_dtype: str | None = None
    #: Weights after the epochs ``train(keep_states_at=...)`` asked for (CPU copies).
    states: dict[int, dict[str, torch.Tensor]] = dataclasses.field(
        default_factory=dict, repr=False, compare=False)
