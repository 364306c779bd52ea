"""Samplers by name. The Python API also takes any ``optuna.samplers.BaseSampler``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from ecotune.names import SAMPLERS

__all__ = ["make_sampler"]


def make_sampler(
    sampler: str | optuna.samplers.BaseSampler,
    seed: int | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    options: Mapping[str, Any] | None = None,
) -> optuna.samplers.BaseSampler:
    """An Optuna sampler for ``sampler`` (a name, or a sampler object returned as is).

    Args:
        sampler: one of :data:`ecotune.names.SAMPLERS` or a sampler object. ``grid``, ``random``,
            ``tpe`` (multivariate), ``gp`` (``GPSampler``), ``nsga2`` (``NSGAIISampler``)
            and ``qmc`` (``QMCSampler``) are Optuna's; ``skopt`` is ecotune's
            :class:`~ecotune.samplers._skopt.SkoptSampler` on scikit-optimize's GP;
            ``rung_tpe`` is :class:`~ecotune.samplers._rung_tpe.RungTPESampler`
            (multivariate), TPE fit on successive halving's rung points.
        seed: makes the sampler's choices repeatable.
        grid: the grid sampler's values per parameter (required for ``"grid"``).
        options: extra keyword arguments for the sampler's constructor.

    Example:
        >>> type(make_sampler("tpe", seed=1)).__name__
        'TPESampler'
        >>> type(make_sampler("skopt", seed=1, options={"n_startup_trials": 5})).__name__
        'SkoptSampler'
    """
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    options = dict(options or {})
    try:
        if sampler == "grid":
            if not grid:
                raise ValueError("the grid sampler needs a grid: values for each parameter")
            return optuna.samplers.GridSampler({k: list(v) for k, v in grid.items()},
                                               seed=seed, **options)
        if sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed, **options)
        if sampler == "tpe":
            # multivariate: models parameters jointly; better on the small spaces used here.
            options.setdefault("multivariate", True)
            return optuna.samplers.TPESampler(seed=seed, **options)
        if sampler == "gp":
            return optuna.samplers.GPSampler(seed=seed, **options)
        if sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, **options)
        if sampler == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, **options)
        if sampler == "rung_tpe":
            from ecotune.samplers._rung_tpe import RungTPESampler

            options.setdefault("multivariate", True)
            return RungTPESampler(seed=seed, **options)
        if sampler == "skopt":
            from ecotune.samplers._skopt import SkoptSampler

            return SkoptSampler(seed=seed, **options)
    except TypeError as err:
        raise ValueError(f"sampler {sampler!r}: bad option ({err})") from None
    raise ValueError(f"unknown sampler {sampler!r}; expected one of {list(SAMPLERS)}")
