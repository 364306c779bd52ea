"""Create (or load) an Optuna study whose objectives are ecotune's named objectives."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from ecotune.names import STUDY_ATTR_OBJECTIVES, STUDY_ATTR_SPEC
from ecotune.objectives import DEFAULT_OBJECTIVES, OBJECTIVES
from ecotune.rules import store_rules
from ecotune.samplers import make_sampler
from ecotune.spec import DEFAULT_STORAGE, StudySpec, load_rules, load_spec
from ecotune.storage import index_trial_numbers, open_storage, redact_url, trial_cache

__all__ = ["create_study", "open_study", "prepare", "StudyMismatchError", "DEFAULT_STORAGE"]


class StudyMismatchError(ValueError):
    """An existing study has other objectives than the ones asked for."""


def _directions(objectives: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    if isinstance(objectives, Mapping):
        pairs = dict(objectives)
    else:
        unknown = [name for name in objectives if name not in OBJECTIVES]
        if unknown:
            raise ValueError(
                f"unknown objective {unknown[0]!r}; expected one of {sorted(OBJECTIVES)}, "
                "or pass a mapping {name: 'maximize' | 'minimize'} for objectives of your own"
            )
        pairs = {name: OBJECTIVES[name].direction for name in objectives}
    if not pairs:
        raise ValueError("a study needs at least one objective")
    for name, direction in pairs.items():
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"objective {name!r}: direction must be 'maximize' or 'minimize' "
                             f"(got {direction!r})")
    return pairs


def create_study(
    study_name: str | None = None,
    storage: str | optuna.storages.BaseStorage | None = DEFAULT_STORAGE,
    sampler: str | optuna.samplers.BaseSampler = "tpe",
    objectives: Sequence[str] | Mapping[str, str] = DEFAULT_OBJECTIVES,
    seed: int | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    sampler_options: Mapping[str, Any] | None = None,
    load_if_exists: bool = True,
    early_stopping: Mapping[str, Any] | None = None,
    budgets: Mapping[str, Any] | None = None,
) -> optuna.Study:
    """Create an Optuna study over named objectives, or load it if it exists.

    The result is a plain ``optuna.Study`` in plain Optuna storage: directions and metric
    names are set, so every Optuna tool and optuna-dashboard work on it unchanged.
    Loading an existing study with other objectives is an error, never a silent change.
    ``study_name``, ``storage`` and ``load_if_exists`` mean what they mean in
    ``optuna.create_study``.

    Args:
        study_name: the study's name in storage (None: Optuna makes a unique one).
        storage: a database URL (default ``sqlite:///ecotune.db``), a storage object, or
            None for in-memory.
        sampler: ``"grid"``, ``"random"``, ``"tpe"``, or any Optuna sampler object.
        objectives: ecotune objective names (default accuracy and energy_j), or a mapping
            ``{name: "maximize" | "minimize"}``.
        seed: the sampler's seed.
        grid: values per parameter, for the grid sampler.
        sampler_options: extra keyword arguments for the sampler.
        load_if_exists: add to an existing study of that name (default) rather than fail.
        early_stopping: energy-aware early stopping for every measured trial: the study
            file's ``[early_stopping]`` keys (``enabled``, ``min_epochs``, ``margin``,
            ``on_stop``), validated the same way.
        budgets: the study file's ``[budgets]`` keys (``trial_energy_j``,
            ``study_energy_j``, ``inference_energy_pj``).

    Both are stored in the study, so every worker and every ``ecotune.measure()`` on it
    applies them.

    Raises:
        ecotune.SpecError: ``early_stopping`` or ``budgets`` is invalid (nothing stored).

    Example:
        >>> study = create_study("doc", storage=None, sampler="random", seed=0)
        >>> study.metric_names, [d.name for d in study.directions]
        (['accuracy', 'energy_j'], ['MAXIMIZE', 'MINIMIZE'])
    """
    directions = _directions(objectives)
    rules = (load_rules({"early_stopping": early_stopping or {}, "budgets": budgets or {}})
             if early_stopping is not None or budgets is not None else None)
    if rules is not None and rules.early_stopping.enabled \
            and not {"accuracy", "energy_j"} <= set(directions):
        raise ValueError("early_stopping needs the objectives accuracy and energy_j "
                         f"(got {list(directions)})")
    sampler_obj = make_sampler(sampler, seed=seed, grid=grid, options=sampler_options)
    # One storage object for the check and the study: one database connection pool.
    storage_obj = open_storage(storage)
    index_trial_numbers(storage_obj)  # a study that runs trials looks them up by number
    if load_if_exists and study_name is not None:
        _check_existing(study_name, storage_obj, directions)
    study = optuna.create_study(
        study_name=study_name,
        storage=trial_cache(storage_obj),
        sampler=sampler_obj,
        directions=list(directions.values()),
        load_if_exists=load_if_exists,
    )
    if study.metric_names is None:
        with warnings.catch_warnings():
            # Experimental since Optuna 3.2 but the only way to name objectives.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(directions))
        study.set_user_attr(STUDY_ATTR_OBJECTIVES, directions)
    if rules is not None:
        store_rules(study, rules)
    return study


def prepare(spec: StudySpec | Mapping[str, Any] | str | os.PathLike,
            **overrides: Any) -> tuple[StudySpec, optuna.Study]:
    """Validate ``spec`` with ``overrides``, then create or load its study, storing the
    spec and its rules in it.

    Everything that can be wrong with the spec is reported before storage is touched.
    """
    spec = load_spec(spec).with_overrides(**overrides)  # no overrides: the spec itself
    study = open_study(spec)
    stored = spec.model_dump(mode="json")
    # Anyone who can read the study reads its attributes: keep the password out of them.
    stored["study"]["storage"] = redact_url(spec.study.storage)
    study.set_user_attr(STUDY_ATTR_SPEC, stored)
    store_rules(study, spec.rules())
    return spec, study


def open_study(spec: StudySpec, worker_index: int = 0) -> optuna.Study:
    """Create or load the study of a validated ``spec``, storing nothing else in it.

    Worker ``worker_index`` samples with the seed ``study.seed + worker_index``, so that
    workers do not propose the same sequence; the spec itself is the same for all.
    """
    seed = spec.study.seed
    return create_study(
        study_name=spec.study.name,
        storage=spec.study.storage,
        sampler=spec.study.sampler.name,
        objectives=spec.study.objectives,
        seed=None if seed is None else seed + worker_index,
        grid=spec.grid() if spec.study.sampler.name == "grid" else None,
        sampler_options=spec.study.sampler.options,
    )


def _check_existing(study_name: str, storage: Any, directions: dict[str, str]) -> None:
    try:
        existing = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return  # no such study yet
    names = existing.metric_names
    wanted = list(directions)
    got_directions = [d.name.lower() for d in existing.directions]
    if (names is not None and names != wanted) or got_directions != list(directions.values()):
        raise StudyMismatchError(
            f"study {study_name!r} already exists with objectives "
            f"{names or got_directions}, not {wanted}: choose another study name "
            "(nothing was changed)"
        )
