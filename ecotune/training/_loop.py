"""The built-in train/evaluate loop: a loop over epochs plus epoch watchers.

Each epoch: apply the runtime decisions due (:mod:`._runtime`), run the batches (with
EAT's penalty and the energy-budget projection where configured), measure validation
accuracy, and hand the epoch's :class:`~ecotune.epochs.EpochRecord` to the watchers: the
caller's ``on_epoch`` first (in a study, the measurement window's
:meth:`~ecotune.MeasurementWindow.report`, which adds the epoch's energy and applies the
study's energy budget and energy-aware early stopping), then patience early stopping. A
watcher ends training by raising :class:`~ecotune.epochs.StopTraining`.

Energy budget (Yang et al. 2019, docs/knobs.md): with ``energy_budget = f`` the
weights are projected every ``budget_every_batches`` steps so that the model's estimated
inference energy stays within f x the dense model's (:mod:`ecotune.knobs.budget`); the
final model is projected onto f exactly, and its validation accuracy measured after that.
Where the projection cannot reach f, ``budget_unmet`` says why.

Device (``config.device``, :mod:`ecotune.devices`): the model, the batches and evaluation
run there. A data set that fits in a quarter of the GPU's free memory is copied there
once, so batches are gathered on the GPU; a larger one stays in host memory and each
batch is copied. On a GPU the loss is read back every :data:`LOSS_CHECK_BATCHES` batches
rather than every batch, so the CPU keeps queueing work while the GPU computes (a read
waits for the GPU).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Collection

import torch
from torch import nn

from ecotune.data import DataSplits
from ecotune.devices import resolve_device
from ecotune.epochs import EpochRecord, EpochWatcher, notify
from ecotune.knobs import EATPenalty
from ecotune.knobs.budget import EnergyBudgetProjector, input_mask
from ecotune.models import MODELS, build_model, count_macs, count_parameters
from ecotune.names import STOP_COMPLETED
from ecotune.training._config import TrainConfig, TrainResult
from ecotune.training._evaluate import accuracy, accuracy_and_density
from ecotune.training._patience import PatienceStopping
from ecotune.training._runtime import RuntimeDecisions

__all__ = ["train", "evaluate_test", "fits_on_device", "BUDGET_SAMPLE", "LOSS_CHECK_BATCHES",
           "DEVICE_MEMORY_SHARE"]

#: Inputs on which the energy-budget projection prices the model.
BUDGET_SAMPLE = 64
#: On a GPU, the loss is checked for NaN/inf every this many batches (and at epoch end).
LOSS_CHECK_BATCHES = 25
#: A data set is copied to the GPU once when it takes at most this share of free memory.
DEVICE_MEMORY_SHARE = 0.25


def fits_on_device(n_bytes: int, free_bytes: int, share: float = DEVICE_MEMORY_SHARE) -> bool:
    """Whether ``n_bytes`` of data may live on a device with ``free_bytes`` free, leaving
    the rest to the model, its activations and the optimiser.

    Example:
        >>> fits_on_device(600 * 2**20, 80 * 2**30), fits_on_device(30 * 2**30, 80 * 2**30)
        (True, False)
    """
    return n_bytes <= share * free_bytes


def _place(data: DataSplits, device: torch.device) -> tuple[DataSplits, bool]:
    """``data`` on ``device`` where it fits (see :func:`fits_on_device`), and whether it is
    there."""
    if device.type == "cpu":
        return data, True
    tensors = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)
               if isinstance(getattr(data, f.name), torch.Tensor)}
    n_bytes = sum(t.numel() * t.element_size() for t in tensors.values())
    free_bytes, _ = torch.cuda.mem_get_info(device)
    if not fits_on_device(n_bytes, free_bytes):
        return data, False
    return dataclasses.replace(data, **{k: t.to(device) for k, t in tensors.items()}), True


def _optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; expected sgd, adam or adamw")


def _masked(data: DataSplits, keep_ratio: float | None) -> tuple[DataSplits, torch.Tensor | None]:
    """``data`` with input masking applied to every split, and the mask (or None)."""
    if keep_ratio is None:
        return data, None
    mask = input_mask(data.x_train, keep_ratio)
    return dataclasses.replace(data, x_train=data.x_train * mask, x_val=data.x_val * mask,
                               x_test=data.x_test * mask), mask


def train(
    data: DataSplits,
    config: TrainConfig,
    seed: int = 0,
    on_epoch: EpochWatcher | None = None,
    test: bool = True,
    keep_states_at: Collection[int] = (),
) -> TrainResult:
    """Train ``config.model`` on ``data.train``, tracking accuracy on ``data.val``.

    The same ``seed`` gives the same initial weights and batch order. ``on_epoch`` is
    called with each epoch's record; raising :class:`~ecotune.epochs.StopTraining` from it
    ends training there, with its reason as ``stop_reason``. With ``test=False`` the test
    split is left alone (``test_accuracy`` and ``activation_density`` are None):
    :func:`evaluate_test` evaluates it later, e.g. only for a trial worth it.
    ``keep_states_at`` lists epochs whose weights to keep (``TrainResult.states``, copies
    on the CPU, taken after the epoch's watchers): a recording reads a shorter run's
    model from them, since on the CPU a shorter run's weights are the longer run's at
    that epoch when nothing in training depends on the planned epochs (no
    ``early_stopping_patience``, no ``energy_budget``).

    Raises:
        FloatingPointError: the training loss became NaN or infinite.

    Example:
        >>> from ecotune.data import load_data
        >>> result = train(load_data("digits"), TrainConfig(model="mlp", epochs=2))
        >>> result.epochs_run, result.stop_reason, 0.0 <= result.test_accuracy <= 1.0
        (2, 'completed', True)
    """
    device = resolve_device(config.device)
    torch.set_num_threads(config.threads)
    _seed(seed, device)
    # Built and initialised on the CPU, then moved: the same seed gives the same initial
    # weights on every device.
    model = build_model(config.model, data.input_shape, data.n_classes, width=config.width)
    macs = _macs(model, config, data)
    model.to(device)
    data, on_device = _place(data, device)
    data, mask = _masked(data, config.input_keep_ratio)
    projector = (EnergyBudgetProjector(model, data.x_train[:BUDGET_SAMPLE].to(device),
                                       config.energy_budget, config.budget_every_batches,
                                       config.budget_schedule, config.budget_warmup_epochs)
                 if config.energy_budget is not None else None)
    patience = (PatienceStopping(model, config.early_stopping_patience, config.epochs)
                if config.early_stopping_patience is not None else None)
    watchers = [w for w in (on_epoch, patience) if w is not None]
    runtime = RuntimeDecisions(model, config.freeze_at_epoch, config.low_precision_at_epoch,
                               device.type, config.low_precision_dtype)
    optimizer = _optimizer(config, model.parameters())
    batch_order = torch.Generator().manual_seed(seed)  # on the CPU: one order everywhere
    states: dict[int, dict[str, torch.Tensor]] = {}
    curve, stop_reason = _run_epochs(model, data, config, optimizer, runtime, projector,
                                     watchers, batch_order, device, on_device,
                                     keep_states_at, states)
    final_val = patience.restore_best() if patience is not None else curve[-1].val_accuracy
    budget_ratio = budget_unmet = None
    if projector is not None:
        budget_ratio = projector.finish() / projector.dense_energy_
        budget_unmet = projector.unmet_
        final_val = accuracy(model, data.x_val, data.y_val)  # of the projected model
    test_accuracy, density = (accuracy_and_density(model, data.x_test, data.y_test) if test
                              else (None, None))
    return TrainResult(
        val_accuracy=final_val,
        test_accuracy=test_accuracy,
        activation_density=density,
        n_params=count_parameters(model),
        macs=macs,
        epochs_run=len(curve),
        stop_reason=stop_reason or STOP_COMPLETED,
        curve=tuple(curve),
        model=model,
        input_mask=None if mask is None else mask.cpu(),
        budget_energy_ratio=budget_ratio,
        budget_unmet=budget_unmet,
        device=device,
        low_precision_dtype=(str(runtime.dtype).removeprefix("torch.") if runtime.low_precision
                             else None),
        states=states,
    )


def _seed(seed: int, device: torch.device) -> None:
    """``torch.manual_seed(seed)``, for a trial on the CPU without its CUDA part where
    CUDA is not initialised: there torch queues that part for a CUDA start that a CPU
    trial never makes, with a formatted stack trace (in a tight loop 0.11 ms a call at
    the top of a stack, 0.31 ms 30 frames deep, as a trial's is). A trial on a GPU seeds
    it in full."""
    if device.type == "cpu" and not torch.cuda.is_initialized():
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


#: MACs by architecture: (model name, its builder, width, input shape, classes) -> MACs.
_MACS: dict[tuple, int] = {}


def _macs(model: nn.Module, config: TrainConfig, data: DataSplits) -> int:
    """MACs of one forward pass of ``model``, counted once per architecture (a builder
    makes the same layers from the same arguments; the count is a forward pass with
    hooks, ~1 ms of every trial otherwise). It draws no random numbers either way."""
    key = (config.model, MODELS.get(config.model), config.width, tuple(data.input_shape),
           data.n_classes)
    macs = _MACS.get(key)
    if macs is None:
        if len(_MACS) > 1000:  # a search over widths keeps a few; never grows without end
            _MACS.clear()
        macs = _MACS[key] = count_macs(model, data.input_shape)["total"]
    return macs


def evaluate_test(result: TrainResult, data: DataSplits) -> TrainResult:
    """``result`` with its test split evaluated: test accuracy and activation density
    from one pass over ``data``'s test split (masked as training's inputs were), on the
    device the model is on.

    Example:
        >>> from ecotune.data import load_data
        >>> digits = load_data("digits")
        >>> untested = train(digits, TrainConfig(model="mlp", epochs=1), test=False)
        >>> untested.test_accuracy is None, evaluate_test(untested, digits).test_accuracy > 0
        (True, True)
    """
    x_test = data.x_test if result.input_mask is None else data.x_test * result.input_mask
    test_accuracy, density = accuracy_and_density(result.model, x_test, data.y_test)
    return dataclasses.replace(result, test_accuracy=test_accuracy,
                               activation_density=density)


def _run_epochs(model: nn.Module, data: DataSplits, config: TrainConfig,
                optimizer: torch.optim.Optimizer, runtime: RuntimeDecisions,
                projector: EnergyBudgetProjector | None, watchers: list[EpochWatcher],
                batch_order: torch.Generator, device: torch.device, on_device: bool,
                keep_states_at: Collection[int] = (),
                states: dict[int, dict[str, torch.Tensor]] | None = None,
                ) -> tuple[list[EpochRecord], str | None]:
    """Train epoch after epoch until the last or until a watcher stops training; the
    learning curve and the stop reason (None: every epoch ran). The weights after each
    epoch of ``keep_states_at`` go into ``states``."""
    curve: list[EpochRecord] = []
    stop_reason = None
    loss_fn = nn.CrossEntropyLoss()  # once: a module made per epoch costs ~25 us an epoch
    t0_s = time.perf_counter()
    with EATPenalty(model, config.eat_lambda, config.eat_sigma) as eat:
        for epoch in range(1, config.epochs + 1):
            decisions = runtime.start_epoch(epoch)
            train_loss = _train_epoch(model, data, config, epoch, optimizer, eat, runtime,
                                      projector, batch_order, device, on_device, loss_fn)
            record = EpochRecord(epoch, train_loss,
                                 accuracy(model, data.x_val, data.y_val, device),
                                 time.perf_counter() - t0_s, decisions=decisions)
            curve.append(record)
            stop_reason = notify(watchers, record)
            if states is not None and epoch in keep_states_at:
                states[epoch] = {k: v.detach().to("cpu", copy=True)
                                 for k, v in model.state_dict().items()}
            if stop_reason is not None:
                break
    return curve, stop_reason


def _train_epoch(model: nn.Module, data: DataSplits, config: TrainConfig, epoch: int,
                 optimizer: torch.optim.Optimizer, eat: EATPenalty, runtime: RuntimeDecisions,
                 projector: EnergyBudgetProjector | None, batch_order: torch.Generator,
                 device: torch.device, on_device: bool, loss_fn: nn.Module) -> float:
    """One pass over the training split; the mean training loss."""
    n_train = len(data.y_train)
    n_batches = math.ceil(n_train / config.batch_size)
    order = torch.randperm(n_train, generator=batch_order, device="cpu")
    if on_device:
        order = order.to(device)
    on_cpu = device.type == "cpu"
    # On a GPU: summed on the device in float64 (what Python's float sum did), read every
    # LOSS_CHECK_BATCHES batches. On the CPU a read waits for nothing: a Python float,
    # the same float64 sum, checked every batch (tensor ops for it cost ~1.5 ms an epoch
    # of the digits cnn, benchmarks/overhead.py).
    loss_sum: torch.Tensor | float = (
        0.0 if on_cpu else torch.zeros((), dtype=torch.float64, device=device))
    for batch, start in enumerate(range(0, n_train, config.batch_size)):
        idx = order[start:start + config.batch_size]
        x, y = data.x_train[idx], data.y_train[idx]
        if not on_device:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with runtime.autocast():
            loss = loss_fn(model(x), y)
            if eat.active:
                loss = loss + eat.penalty()
        if on_cpu:
            loss_sum += loss.item() * len(idx)
        else:
            loss_sum += loss.detach().double() * len(idx)
        if on_cpu or (batch + 1) % LOSS_CHECK_BATCHES == 0 or batch + 1 == n_batches:
            total = float(loss_sum)  # on a GPU: waits for the batches queued so far
            if not math.isfinite(total):
                raise FloatingPointError(
                    f"training loss became {total} at epoch {epoch} "
                    f"(lr={config.lr}, optimizer={config.optimizer})")
        optimizer.zero_grad(set_to_none=True)
        runtime.backward_step(loss, optimizer)
        if projector is not None:
            projector.after_step(epoch - 1 + (batch + 1) / n_batches)
    return float(loss_sum) / n_train
