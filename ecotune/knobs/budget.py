"""Energy-budget training by weighted sparse projection (Yang, Zhu and Liu, ICLR 2019).

The knob ``energy_budget`` is a fraction of the *dense* model's estimated inference energy
on the Eyeriss-style array (:mod:`ecotune.energy.hardware.eyeriss`): the energy with every
weight and every input value counted as non-zero. Every ``every_batches`` optimiser steps
the weights are projected onto the budget by a greedy knapsack (Yang et al. 2019):

1. on a fixed sample batch, each weight's energy cost is priced from the model: a conv
   weight costs ``3`` per non-zero input it multiplies (the compute term) plus its share of
   the weight-movement term ``ceil(P/m)*6 + P*1 + DRAM`` (DRAM 200 for the layer's 4,096
   largest weights, which fit the weight cache; ``ceil(P/m)*200`` for the others); a
   fully connected weight costs ``3 + 200 + 6 + 1``;
2. weights are ranked by ``w^2 / cost`` and kept in that order while the accumulated cost
   stays within ``budget - input energy``; the rest are set to zero;
3. the projected model's exact estimate is computed; where the per-weight prices
   (marginal costs at the current weight count) under-priced it, the capacity is
   tightened and the projection repeated, so the model ends at or under the budget; where
   it cannot (the budget is below what the model costs with every weight pruned, or the
   tightening rounds run out), ``unmet_`` says why.

Pruned weights stay zero through later updates: a mask is re-applied after every
optimiser step. The budget can be approached gradually (``schedule = "linear"`` or
``"exponential"`` over ``warmup_epochs``). Optional input masking keeps only the
``input_keep_ratio`` input positions with the largest mean magnitude over the training
data (a fixed mask: a simplification of the paper's learned masks), cutting the first
layer's input energy.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ecotune.energy.hardware import (
    NONZERO_THRESHOLD,
    dense_energy,
    eyeriss_layer_costs,
    trace_layers,
)
from ecotune.energy.hardware.eyeriss import (
    ARRAY_ROWS,
    CACHE,
    DRAM,
    MAC,
    RF,
    WEIGHT_CACHE,
)

__all__ = ["EnergyBudgetProjector", "input_mask", "SCHEDULES"]

SCHEDULES = ("none", "linear", "exponential")
_MAX_TIGHTENING_ROUNDS = 12


def _weight_costs(trace) -> torch.Tensor:
    """Marginal energy of each weight of one traced layer being non-zero (its shape)."""
    weight = trace.weight
    if trace.kind == "linear":
        return torch.full_like(weight, MAC + DRAM + CACHE + RF)
    m = trace.module
    x_mask = (trace.inputs.abs() > NONZERO_THRESHOLD).to(torch.float32)
    # Non-zero inputs each weight multiplies, per sample: sum over output positions of the
    # unfolded input row (input channel, kernel offset) it reads.
    rows = F.unfold(x_mask, m.kernel_size, m.dilation, m.padding, m.stride).sum(2).mean(0)
    groups, out_channels = m.groups, weight.shape[0]
    per_group = rows.view(groups, -1)  # (groups, in_channels/groups * kh * kw)
    group_of_output = (torch.arange(out_channels, device=weight.device)
                       // (out_channels // groups))
    compute = MAC * per_group[group_of_output].view_as(weight)
    p = trace.positions
    tiles = math.ceil(p / ARRAY_ROWS)
    # The first WEIGHT_CACHE non-zero weights of a layer stay in the weight cache and are
    # read from DRAM once; the rest once per tile. Price the layer's largest weights (the
    # ones a projection keeps first) at the cached rate, the others at the tiled one:
    # pricing every weight at the current count's rate would empty whole layers just over
    # the cache size.
    dram = torch.full_like(weight, DRAM * tiles)
    largest = weight.abs().flatten().argsort(descending=True)[:WEIGHT_CACHE]
    dram.view(-1)[largest] = DRAM
    return compute + tiles * CACHE + p * RF + dram


def input_mask(x_train: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """A 0/1 mask over one input's positions keeping the ``keep_ratio`` share with the
    largest mean magnitude over ``x_train`` (shape of one input).

    Example:
        >>> x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
        >>> input_mask(x, 0.5).tolist()
        [[[0.0, 0.0], [1.0, 1.0]]]
    """
    if not 0 < keep_ratio <= 1:
        raise ValueError(f"input_keep_ratio must be in (0, 1] (got {keep_ratio})")
    strength = x_train.abs().mean(0)
    n_keep = max(1, round(keep_ratio * strength.numel()))
    threshold = strength.flatten().topk(n_keep).values[-1]
    return (strength >= threshold).to(x_train.dtype)


class EnergyBudgetProjector:
    """Keeps a model's estimated inference energy within a budget during training.

    Args:
        model: the model being trained (its Conv2d/Linear weights are projected).
        sample: a fixed batch of inputs on which energy is estimated.
        budget: the target, a fraction of the dense energy (0 < budget <= 1; see
            :func:`ecotune.energy.hardware.dense_energy`).
        every_batches: project every this many optimiser steps (the authors: 10).
        schedule: ``"none"`` (the target from the start), ``"linear"`` or
            ``"exponential"`` decay from 1.0 to the target over ``warmup_epochs``.

    Call :meth:`after_step` after every optimiser step and :meth:`finish` after training.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> sample = torch.rand(4, 1, 4, 4)
        >>> projector = EnergyBudgetProjector(net, sample, budget=0.5)
        >>> projector.finish() <= 0.5 * projector.dense_energy_
        True
    """

    def __init__(self, model: nn.Module, sample: torch.Tensor, budget: float,
                 every_batches: int = 10, schedule: str = "none",
                 warmup_epochs: int = 1) -> None:
        if not 0 < budget <= 1:
            raise ValueError(f"energy_budget must be in (0, 1], a fraction of the dense "
                             f"model's energy (got {budget})")
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown budget schedule {schedule!r}; expected one of "
                             f"{list(SCHEDULES)}")
        if every_batches < 1 or warmup_epochs < 1:
            raise ValueError("every_batches and warmup_epochs must be >= 1")
        self.model = model
        self.sample = sample
        self.budget = budget
        self.every_batches = every_batches
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.masks_: dict[nn.Module, torch.Tensor] = {}
        self.energy_: float | None = None  # estimated energy after the last projection
        #: Why the last projection ended above its target, in one line (None: within it).
        self.unmet_: str | None = None
        self._steps = 0

    @functools.cached_property
    def dense_energy_(self) -> float:
        """The model's energy with every value non-zero (relative units), the budget's
        reference. It depends on the layers' shapes only, not on weight values, so it is
        computed at first use rather than in the constructor."""
        return dense_energy(self.model, self.sample)

    def fraction_at(self, epoch_progress: float) -> float:
        """The budget fraction in force ``epoch_progress`` epochs into training."""
        if self.schedule == "none" or epoch_progress >= self.warmup_epochs:
            return self.budget
        t = epoch_progress / self.warmup_epochs
        if self.schedule == "linear":
            return 1.0 + (self.budget - 1.0) * t
        return self.budget ** t  # exponential: geometric from 1 to the target

    def after_step(self, epoch_progress: float) -> None:
        """Re-apply the masks; every ``every_batches`` steps, project afresh."""
        self._steps += 1
        if self._steps % self.every_batches == 0:
            self.project(self.fraction_at(epoch_progress))
        else:
            self._apply_masks()

    def finish(self) -> float:
        """Project onto the final budget; return the model's estimated energy (relative
        units), at or under ``budget * dense_energy_`` unless ``unmet_`` says why not."""
        return self.project(self.budget)

    @torch.no_grad()
    def _apply_masks(self) -> None:
        for module, mask in self.masks_.items():
            module.weight.mul_(mask)

    @torch.no_grad()
    def project(self, fraction: float) -> float:
        """Project the weights onto ``fraction`` of the dense energy; return the energy."""
        target = fraction * self.dense_energy_
        traces = trace_layers(self.model, self.sample)
        modules = [t.module for t in traces]
        costs = torch.cat([_weight_costs(t).flatten() for t in traces]).double()
        values = torch.cat([t.weight.flatten().pow(2) for t in traces]).double()
        input_energy = sum(c.inputs for c in eyeriss_layer_costs(self.model, self.sample))
        order = torch.argsort(values / costs, descending=True)
        capacity = target - input_energy
        for _ in range(_MAX_TIGHTENING_ROUNDS):
            keep_sorted = torch.cumsum(costs[order], 0) <= capacity
            keep = torch.zeros_like(values, dtype=torch.bool)
            keep[order[keep_sorted]] = True
            keep &= values > 0  # a zero weight adds nothing: never spend budget on it
            self._set_masks(modules, keep)
            energy = sum(c.total for c in eyeriss_layer_costs(self.model, self.sample))
            if energy <= target or not keep.any():
                break
            # The marginal prices under-priced the model: tighten and project again.
            capacity *= 0.98 * target / energy
        self.energy_ = energy
        self.unmet_ = None if energy <= target else self._why_unmet(fraction, energy,
                                                                    keep.any())
        return energy

    def _why_unmet(self, fraction: float, energy: float, kept_any: bool) -> str:
        ratio = energy / self.dense_energy_
        if not kept_any:
            return (f"energy_budget {fraction:g} is below what the model costs with every "
                    f"weight pruned ({ratio:.4g} of the dense model's estimate: its inputs "
                    "alone), Eyeriss model")
        return (f"energy_budget {fraction:g} not reached: {ratio:.4g} of the dense model's "
                f"estimate after {_MAX_TIGHTENING_ROUNDS} tightening rounds, Eyeriss model")

    def _set_masks(self, modules: list[nn.Module], keep: torch.Tensor) -> None:
        start = 0
        for module in modules:
            n = module.weight.numel()
            mask = keep[start:start + n].view_as(module.weight).to(module.weight.dtype)
            # Weights already pruned are zero: they rank last, so they stay pruned.
            if module in self.masks_:
                mask = mask * self.masks_[module]
            self.masks_[module] = mask
            start += n
        self._apply_masks()
