"""Run the same search space under several samplers, for ``ecotune compare``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from ecotune.names import SAMPLERS
from ecotune.search import run
from ecotune.spec import SpecError, StudySpec, load_spec

__all__ = ["comparison_runs", "run_comparison", "run_name"]


def run_name(study_name: str, label: str, repeat: int) -> str:
    """The study name of one run: ``NAME-LABEL-rR``, ``LABEL`` being the sampler of a
    live comparison or the method of a replay (``ecotune.tabular.replay``).

    Example:
        >>> run_name("digits", "tpe", 0)
        'digits-tpe-r0'
    """
    return f"{study_name}-{label}-r{repeat}"


def comparison_runs(spec: StudySpec | Mapping[str, Any] | str | os.PathLike,
                    samplers: Sequence[str], n_trials: int, repeats: int = 1,
                    ) -> list[tuple[str, int, StudySpec]]:
    """The validated spec of every run, ``(sampler, repeat, spec)``, before anything runs.

    Repeat ``r`` uses seed ``study.seed + r`` (``study.seed`` defaults to 0). Sampler
    options in the spec are dropped: they belong to the spec's own sampler.

    Raises:
        ValueError: an unknown sampler, ``n_trials`` or ``repeats`` below 1, or a spec the
            sampler cannot run (the grid sampler with a float parameter without a grid).

    Example:
        >>> spec = {"study": {"name": "c", "seed": 4}, "search_space": {
        ...     "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}}
        >>> runs = comparison_runs(spec, ["random", "tpe"], 5, repeats=2)
        >>> [(s, r, x.study.name, x.study.seed) for s, r, x in runs][1:3]
        [('random', 1, 'c-random-r1', 5), ('tpe', 0, 'c-tpe-r0', 4)]
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1 (got {n_trials})")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1 (got {repeats})")
    if not samplers:
        raise ValueError("no sampler to compare")
    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:
        raise ValueError(f"unknown sampler {unknown[0]!r}; expected some of "
                         f"{list(SAMPLERS)}")
    if len(set(samplers)) != len(samplers):
        raise ValueError(f"a sampler is listed twice: {list(samplers)}")
    base = load_spec(spec)
    seed = base.study.seed or 0
    runs = []
    for sampler in samplers:
        for r in range(repeats):
            try:
                run_spec = base.with_overrides(sampler=sampler, n_trials=n_trials,
                                               study_name=run_name(base.study.name, sampler, r),
                                               seed=seed + r)
            except SpecError as err:
                raise SpecError(f"sampler {sampler!r}: {err}") from None
            runs.append((sampler, r, run_spec))
    return runs


def run_comparison(runs: Sequence[tuple[str, int, StudySpec]],
                   on_run: Callable[[str, int, optuna.Study], None] | None = None,
                   ) -> dict[str, list[optuna.Study]]:
    """Run every run of :func:`comparison_runs` one after the other; studies by sampler.

    Args:
        on_run: called after each run with ``(sampler, repeat, study)``.
    """
    studies: dict[str, list[optuna.Study]] = {}
    for sampler, r, run_spec in runs:
        study = run(run_spec)
        studies.setdefault(sampler, []).append(study)
        if on_run is not None:
            on_run(sampler, r, study)
    return studies
