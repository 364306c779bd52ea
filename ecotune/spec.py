"""The study file: parse a TOML file (or a dict) into a validated :class:`StudySpec`.

Validation is done by pydantic, which gives every error a field path for free; this module
turns pydantic's report into one :class:`SpecError` whose message names the path and what was
expected, e.g. ``search_space.lr.low: must be > 0 with log = true (got 0.0)``.

A spec is pure data: nothing here touches storage, data or torch, so a bad file is rejected
before anything is created.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import tomllib
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from ecotune.data import options_for, takes_option
from ecotune.energy.carbon import carbon_intensity_g_per_kwh
from ecotune.names import (
    BUDGET_SCHEDULES,
    DATASETS,
    DEVICE_PATTERN,
    EARLY_STOPPING_ACTIONS,
    EARLY_STOPPING_METHODS,
    ENERGY_GPUS,
    INFERENCE_MODES,
    LOW_PRECISION_DTYPES,
    METERS,
    MODELS,
    OPTIMIZERS,
    RUNG_ORDERS,
    SAMPLERS,
    TEST_EVALUATIONS,
)
from ecotune.objectives import OBJECTIVES

__all__ = [
    "SpecError",
    "StudySpec",
    "load_spec",
    "KNOBS",
    "TrialRules",
    "load_rules",
]

#: Knobs the built-in trainer applies; the search space may sample any of them.
KNOBS = (
    "width",
    "lr",
    "batch_size",
    "epochs",
    "optimizer",
    "weight_decay",
    "eat_lambda",
    "eat_sigma",
    "freeze_at_epoch",
    "low_precision_at_epoch",
    "early_stopping_patience",
    "energy_budget",
    "input_keep_ratio",
)
DEFAULT_STORAGE = "sqlite:///ecotune.db"


def _int_to_float(value: Any) -> Any:
    # TOML distinguishes 1 from 1.0; a user writing `eat_lambda = 1` means a float.
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


#: A float field that also takes a TOML integer (strict mode would refuse it).
Float = Annotated[float, BeforeValidator(_int_to_float)]


class SpecError(ValueError):
    """A study file or spec dict is invalid. The message names the field path(s)."""


class _Strict(BaseModel):
    # extra="forbid": an unknown key is an error (a typo must not be silently ignored);
    # strict: "10" is not an int, 1 is not a bool.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SamplerSpec(_Strict):
    """A sampler by name, with options passed to it (e.g. ``n_startup_trials`` for tpe)."""

    name: Literal[SAMPLERS] = "tpe"
    options: dict[str, Any] = Field(default_factory=dict)


class StudySection(_Strict):
    name: str = Field(min_length=1, max_length=200)
    storage: str = DEFAULT_STORAGE
    sampler: SamplerSpec = SamplerSpec()
    n_trials: int | None = Field(default=None, gt=0)
    #: Trials each worker process runs at once, in threads (Optuna's ``n_jobs``).
    n_jobs: int = Field(default=1, ge=1, le=256)
    objectives: tuple[str, ...] = ("accuracy", "energy_j")
    seed: int | None = None

    @field_validator("sampler", mode="before")
    @classmethod
    def _sampler_by_name(cls, value: Any) -> Any:
        # `sampler = "tpe"` is shorthand for `[study.sampler] name = "tpe"`.
        return {"name": value} if isinstance(value, str) else value

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives_list(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("objectives")
    @classmethod
    def _known_objectives(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one objective")
        unknown = [name for name in value if name not in OBJECTIVES]
        if unknown:
            raise ValueError(
                f"unknown objective {unknown[0]!r} (expected some of {sorted(OBJECTIVES)})"
            )
        if len(set(value)) != len(value):
            raise ValueError("lists an objective twice")
        return value

    @model_validator(mode="after")
    def _skopt_options(self) -> StudySection:
        # The skopt sampler checks its own options; here a bad one fails when the file loads.
        if self.sampler.name == "skopt":
            from ecotune.samplers import make_sampler

            try:
                make_sampler("skopt", seed=0, options=self.sampler.options)
            except ValueError as err:
                raise ValueError(f"sampler.options: {err}") from None
            cost = self.sampler.options.get("cost_objective")
            if cost is not None and cost not in self.objectives:
                raise ValueError(f"sampler.options: cost_objective {cost!r} is not one of the "
                                 f"study's objectives {list(self.objectives)}")
        return self

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        from ecotune.storage import scheme_problem  # one wording, password hidden

        problem = scheme_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class DataSection(_Strict):
    name: Literal[DATASETS] = "digits"
    # `fake` only: torchvision FakeData's size, image shape (C, H, W) and classes.
    n_samples: int = Field(default=1000, gt=0)
    image_shape: tuple[int, int, int] = (1, 28, 28)
    n_classes: int = Field(default=10, ge=2)
    # Share held out for validation (the search's accuracy); None: 0.2 for digits and fake,
    # 0.1 of the original training split for the image sets.
    val_fraction: Float | None = Field(default=None, gt=0, lt=1)
    # digits and fake only: share held out for test (the image sets keep their test split).
    test_fraction: Float = Field(default=0.2, gt=0, lt=1)
    # Keep only this many training examples (a fixed random subset); None: all.
    train_samples: int | None = Field(default=None, gt=0)
    # Image sets: where their files are (default $ECOTUNE_DATA or ~/.cache/ecotune/data),
    # and whether torchvision may download missing ones (needs internet).
    root: str | None = None
    download: bool = False

    @field_validator("image_shape", mode="before")
    @classmethod
    def _shape_list(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("image_shape")
    @classmethod
    def _positive_shape(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(value) <= 0:
            raise ValueError(f"every dimension must be > 0 (got {list(value)})")
        return value

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> DataSection:
        val = self.val_fraction if self.val_fraction is not None else 0.2
        if takes_option(self.name, "test_fraction") and val + self.test_fraction >= 0.9:
            raise ValueError(
                "val_fraction + test_fraction must be < 0.9 so that training data remains "
                f"(got {val} + {self.test_fraction})"
            )
        return self

    @model_serializer(mode="wrap")
    def _only_fields_that_apply(self, handler: Any) -> dict[str, Any]:
        # The stored spec keeps only what this data set uses (no image_shape for digits).
        data = handler(self)
        return {"name": data.pop("name"), **options_for(self.name, data)}

    def loader_options(self) -> dict[str, Any]:
        """Keyword arguments of ``ecotune.data.load_data`` for this section."""
        settings = {field: getattr(self, field) for field in type(self).model_fields
                    if field != "name"}
        if self.val_fraction is None:  # the data set's own default
            del settings["val_fraction"]
        return options_for(self.name, settings)


class ModelSection(_Strict):
    name: Literal[MODELS] = "cnn"
    width: Float = Field(default=1.0, gt=0, le=16)


class TrainingSection(_Strict):
    epochs: int = Field(default=10, gt=0, le=10_000)
    batch_size: int = Field(default=64, gt=0)
    lr: Float = Field(default=0.01, gt=0)
    optimizer: Literal[OPTIMIZERS] = "adam"
    weight_decay: Float = Field(default=0.0, ge=0)
    eat_lambda: Float = Field(default=0.0, ge=0)
    eat_sigma: Float = Field(default=1e-4, gt=0)
    # Runtime decisions (Reguero et al. 2024; docs/knobs.md): epochs counted from 1; None: never.
    freeze_at_epoch: int | None = Field(default=None, ge=1)
    low_precision_at_epoch: int | None = Field(default=None, ge=1)
    early_stopping_patience: int | None = Field(default=None, ge=1)
    # Energy budget (Yang et al. 2019; docs/knobs.md): a fraction of the dense model's estimated
    # inference energy; the weights are projected onto it every budget_every_batches steps.
    energy_budget: Float | None = Field(default=None, gt=0, le=1)
    budget_every_batches: int = Field(default=10, ge=1)
    budget_schedule: Literal[BUDGET_SCHEDULES] = "none"
    budget_warmup_epochs: int = Field(default=1, ge=1)
    # Keep only this share of input positions (those of largest mean magnitude).
    input_keep_ratio: Float | None = Field(default=None, gt=0, le=1)
    # torch threads per trial: more threads than cores made small models 15-20x slower here.
    threads: int = Field(default=1, gt=0, le=256)
    # Where to train (a fixed setting, not a knob): "auto" is the first visible CUDA GPU if
    # there is one, else the CPU; "cuda" on a machine without CUDA is refused up front.
    device: str = "auto"
    # Autocast type from low_precision_at_epoch on: "auto" is bfloat16 on the CPU and
    # float16 with a gradient scaler on a GPU; "bfloat16" on a GPU without it: float16.
    low_precision_dtype: Literal[LOW_PRECISION_DTYPES] = "auto"
    # Which trials evaluate the test split (a fixed setting, not a knob), in a measurement
    # window of their own (evaluation_energy_j, not the energy_j objective): "front" only a
    # trial on the study's feasible front when it finishes, "all" every trial that trains
    # to the end, "none" no trial. Trials stopped early or pruned never do.
    test_evaluation: Literal[TEST_EVALUATIONS] = "front"
    # Seed of the initial weights and batch order, the same for every trial and every
    # worker; in a study file its default is [study] seed, else 0 (StudySpec fills it in).
    seed: int = 0

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str) -> str:
        import re

        if not re.match(DEVICE_PATTERN, value):
            raise ValueError(f'expected "auto", "cpu", "cuda" or "cuda:N" (got {value!r})')
        return value



class BudgetsSection(_Strict):
    """Energy budgets on the search itself (None: no budget)."""

    # A trial's training stops when its next epoch would take it past this; the trial is
    # then infeasible (never on the front).
    trial_energy_j: Float | None = Field(default=None, gt=0)
    # No new trial starts once the study's trials together have spent this much.
    study_energy_j: Float | None = Field(default=None, gt=0)
    # A trained model whose estimated inference energy (ASIC model, pJ) exceeds this is
    # infeasible.
    inference_energy_pj: Float | None = Field(default=None, gt=0)
    # A trained model whose measured inference energy per sample (J) exceeds this is
    # infeasible; needs [energy] inference = "measured".
    inference_energy_measured_j: Float | None = Field(default=None, gt=0)



class EarlyStoppingSection(_Strict):
    """Energy-aware early stopping across trials (after Reguero et al. 2024)."""

    enabled: bool = False
    # "predict": stop a trial whose predicted final point the front dominates;
    # "successive_halving": ASHA-like rungs at min_epochs x reduction_factor^k epochs.
    method: Literal[EARLY_STOPPING_METHODS] = "predict"
    # Epochs a trial always runs before it may be stopped (successive halving: first rung).
    min_epochs: int = Field(default=2, ge=1)
    # Successive halving: the top 1/reduction_factor at a rung continue.
    reduction_factor: int = Field(default=3, ge=2)
    # A front point must beat the predicted final point by this much in accuracy (absolute)
    # and by this fraction in energy.
    margin: Float = Field(default=0.01, ge=0, lt=1)
    # Successive halving: Hyperband-style brackets. Trial n runs in bracket n % brackets;
    # bracket s has its first rung at min_epochs x reduction_factor^s and ranks only
    # against its own trials.
    brackets: int = Field(default=1, ge=1)
    # A stopped trial ends "pruned", or "complete" with its values at the stopping epoch.
    on_stop: Literal[EARLY_STOPPING_ACTIONS] = "prune"
    # Successive halving: how a rung orders the trials within one non-dominated rank,
    # "crowding" (NSGA-II's crowding distance) or "epsilon_net" (Salinas et al. 2021's
    # greedy spread, the most accurate first).
    rung_order: Literal[RUNG_ORDERS] = "crowding"

    @model_validator(mode="after")
    def _brackets_need_halving(self) -> EarlyStoppingSection:
        if self.brackets > 1 and self.method != "successive_halving":
            raise ValueError(f"brackets = {self.brackets} needs method = "
                             "\"successive_halving\" (brackets are Hyperband's)")
        if self.rung_order != "crowding" and self.method != "successive_halving":
            raise ValueError(f"rung_order = \"{self.rung_order}\" needs method = "
                             "\"successive_halving\" (it orders successive halving's rungs)")
        return self



class EnergySection(_Strict):
    # ISO 3166-1 alpha-3 code of the grid whose carbon intensity converts energy to CO2.
    country: str = Field(default="USA", pattern=r"^[A-Z]{3}$")
    meter: Literal[METERS] = "auto"
    # Power usage effectiveness of the site: facility energy / IT energy, >= 1.
    pue: Float = Field(default=1.0, ge=1.0)
    # GPUs a trial's energy covers: "used" (the GPU it trains on; none for a trial on the
    # CPU) or "visible" (every GPU this process sees, idle ones included: the whole machine
    # where CUDA_VISIBLE_DEVICES is unset).
    gpus: Literal[ENERGY_GPUS] = "used"
    # A trained model's inference energy: "estimate" (the ASIC and Eyeriss hardware models
    # only) or "measured" (also run on the trial's device, in a window of its own: the
    # inference_energy_measured_j objective and budget).
    inference: Literal[INFERENCE_MODES] = "estimate"

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        carbon_intensity_g_per_kwh(value)  # raises ValueError naming the code
        return value


Number = Union[int, float]


class FloatParam(_Strict):
    type: Literal["float"]
    low: Float
    high: Float
    log: bool = False
    step: Float | None = Field(default=None, gt=0)
    grid: tuple[float, ...] | None = None


    @field_validator("grid", mode="before")
    @classmethod
    def _grid_floats(cls, value: Any) -> Any:
        if isinstance(value, list):
            return tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                         for v in value)
        return value

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        _check_range(self.low, self.high, self.log, self.step, self.grid)
        return self


class IntParam(_Strict):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, gt=0)
    grid: tuple[int, ...] | None = None

    @field_validator("grid", mode="before")
    @classmethod
    def _grid_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        _check_range(self.low, self.high, self.log, None if self.step == 1 else self.step,
                     self.grid)
        return self

    def values(self) -> list[int]:
        """Every value of the range, for the grid sampler when no explicit grid is given."""
        return list(range(self.low, self.high + 1, self.step))


class CategoricalParam(_Strict):
    type: Literal["categorical"]
    choices: tuple[Union[bool, int, float, str], ...]

    @field_validator("choices", mode="before")
    @classmethod
    def _choices_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("choices")
    @classmethod
    def _non_empty(cls, value: tuple) -> tuple:
        if not value:
            raise ValueError("needs at least one choice")
        if len(set(map(repr, value))) != len(value):
            raise ValueError(f"lists a choice twice: {list(value)}")
        return value


Param = Annotated[Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")]


def _check_range(low: Number, high: Number, log: bool, step: Number | None,
                 grid: tuple | None) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"low and high must be finite (got low={low}, high={high})")
    if low > high:
        raise ValueError(f"low must be <= high (got low={low}, high={high})")
    if log and low <= 0:
        raise ValueError(f"low must be > 0 with log = true (got {low})")
    if log and step is not None:
        raise ValueError("step and log = true cannot be used together")
    if grid is not None:
        if not grid:
            raise ValueError("grid needs at least one value")
        outside = [v for v in grid if not low <= v <= high]
        if outside:
            raise ValueError(f"grid value {outside[0]} is outside [{low}, {high}]")


class TrialRules(_Strict):
    """The rules every measured trial of a study obeys, whoever trains it: the study
    file's ``[early_stopping]`` and ``[budgets]`` sections. Stored in the study, so every
    worker and every ``ecotune.measure()`` on it applies them (:func:`load_rules`)."""

    early_stopping: EarlyStoppingSection = EarlyStoppingSection()
    budgets: BudgetsSection = BudgetsSection()


def load_rules(source: Mapping[str, Any] | TrialRules) -> TrialRules:
    """Validate ``{"early_stopping": {...}, "budgets": {...}}`` with the study file's own
    models and error messages.

    Example:
        >>> load_rules({"budgets": {"trial_energy_j": 50.0}}).budgets.trial_energy_j
        50.0
        >>> load_rules({"budgets": {"trial_energy_j": -1.0}})
        Traceback (most recent call last):
        ...
        ecotune.spec.SpecError: budgets.trial_energy_j: Input should be greater than 0 (got -1.0)
    """
    if isinstance(source, TrialRules):
        return source
    try:
        return TrialRules.model_validate(source)
    except ValidationError as err:
        raise SpecError(_format_errors(err)) from None


class StudySpec(_Strict):
    """A whole study: what to search, how, and where to store it.

    Build one with :func:`load_spec`; every field has a default except ``study.name``.
    """

    study: StudySection
    data: DataSection = DataSection()
    model: ModelSection = ModelSection()
    training: TrainingSection = TrainingSection()
    energy: EnergySection = EnergySection()
    budgets: BudgetsSection = BudgetsSection()
    early_stopping: EarlyStoppingSection = EarlyStoppingSection()
    search_space: dict[str, Param] = Field(default_factory=dict)

    def rules(self) -> TrialRules:
        """The early-stopping and budget rules of this study."""
        return TrialRules(early_stopping=self.early_stopping, budgets=self.budgets)

    @model_validator(mode="before")
    @classmethod
    def _training_seed_defaults_to_the_study_seed(cls, data: Any) -> Any:
        # Resolved here, once, so that the spec says which seed trains: `study.seed` is
        # the sampler's alone (a worker adds its index to it), `training.seed` the same
        # for every worker, and overriding the sampler seed later changes nothing else.
        if not isinstance(data, Mapping):
            return data
        training, study = data.get("training", {}), data.get("study")
        seed = study.get("seed") if isinstance(study, Mapping) else None
        if isinstance(training, Mapping) and "seed" not in training \
                and isinstance(seed, int) and not isinstance(seed, bool):
            data = {**data, "training": {**training, "seed": seed}}
        return data

    @field_validator("search_space")
    @classmethod
    def _known_knobs(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if name not in KNOBS:
                raise ValueError(f"unknown knob {name!r} (expected one of {list(KNOBS)})")
        return value

    @model_validator(mode="after")
    def _knob_values_are_valid(self) -> StudySpec:
        # A sampled knob must still make a valid training config: check its range edges.
        for name, param in self.search_space.items():
            for value in _edge_values(param):
                try:
                    self._with_knobs({name: value})
                except SpecError as err:
                    raise ValueError(f"search_space.{name}: value {value!r} is not a valid "
                                     f"{name}: {err}") from None
        if self.early_stopping.enabled and not {"accuracy", "energy_j"} <= set(
                self.study.objectives):
            raise ValueError("early_stopping needs the objectives accuracy and energy_j "
                             f"(got {list(self.study.objectives)})")
        if self.energy.inference != "measured":
            if "inference_energy_measured_j" in self.study.objectives:
                raise ValueError('the objective inference_energy_measured_j needs energy.'
                                 'inference = "measured"')
            if self.budgets.inference_energy_measured_j is not None:
                raise ValueError('budgets.inference_energy_measured_j needs energy.'
                                 'inference = "measured"')
        if self.study.sampler.name == "rung_tpe" and not (
                self.early_stopping.enabled
                and self.early_stopping.method == "successive_halving"):
            raise ValueError('the rung_tpe sampler needs [early_stopping] enabled = true and '
                             'method = "successive_halving" (it learns from their rung '
                             'points)')
        if self.study.sampler.name == "grid":
            if not self.search_space:
                raise ValueError("the grid sampler needs a non-empty search_space")
            for name, param in self.search_space.items():
                if isinstance(param, FloatParam) and param.grid is None:
                    raise ValueError(
                        f"search_space.{name}: the grid sampler needs `grid = [...]` for a "
                        "float parameter (or make it categorical)"
                    )
        return self

    def grid(self) -> dict[str, list]:
        """The grid sampler's grid: explicit `grid` lists, categorical choices, int ranges."""
        grid: dict[str, list] = {}
        for name, param in self.search_space.items():
            if isinstance(param, CategoricalParam):
                grid[name] = list(param.choices)
            elif param.grid is not None:
                grid[name] = list(param.grid)
            elif isinstance(param, IntParam):
                grid[name] = param.values()
        return grid

    def with_overrides(self, **overrides: Any) -> StudySpec:
        """A copy with study-level fields replaced (``n_trials``, ``sampler``, ``storage``,
        ``study_name``, ``seed``: the sampler seed), the new values validated. ``None``
        values are ignored.

        Example:
            >>> spec = load_spec({"study": {"name": "o", "seed": 1}})
            >>> spec.with_overrides(seed=7, n_trials=None).study.seed, spec.training.seed
            (7, 1)
        """
        study: dict[str, Any] = {}
        for key, value in overrides.items():
            if value is None:
                continue
            field = "name" if key == "study_name" else key
            if field not in StudySection.model_fields:
                raise SpecError(f"{key}: not a study setting that can be overridden")
            study[field] = value
        return self.with_settings(study=study)

    def with_settings(self, **sections: Mapping[str, Any]) -> StudySpec:
        """A copy with some fields of some sections replaced, e.g.
        ``with_settings(training={"device": "cpu"})``.

        Only what changes is validated (the changed sections, then the checks across
        sections); the other sections are kept as they are, not validated again.

        Raises:
            SpecError: a new value is invalid; the message names its path, as
                :func:`load_spec`'s do.
        """
        sections = {name: fields for name, fields in sections.items() if fields}
        if not sections:
            return self
        unknown = [name for name in sections
                   if not isinstance(getattr(self, name, None), BaseModel)]
        if unknown:
            raise SpecError(f"{unknown[0]}: not a section of the study file")
        data: dict[str, Any] = {name: getattr(self, name) for name in self.model_fields_set}
        for name, fields in sections.items():
            section = getattr(self, name)
            data[name] = {**{f: getattr(section, f) for f in section.model_fields_set},
                          **fields}
        if "training" in sections:  # resolved already: not the (new) study seed's default
            data["training"].setdefault("seed", self.training.seed)
        try:
            return StudySpec.model_validate(data)
        except ValidationError as err:
            raise SpecError(_format_errors(err)) from None

    def _with_knobs(self, knobs: Mapping[str, Any]) -> tuple[ModelSection, TrainingSection]:
        """The model and training sections with sampled knob values applied (validated)."""
        model = self.model.model_dump()
        training = self.training.model_dump()
        for name, value in knobs.items():
            (model if name == "width" else training)[name] = value
        try:
            return ModelSection(**model), TrainingSection(**training)
        except ValidationError as err:
            raise SpecError(_format_errors(err, with_path=False)) from None


def _edge_values(param: Any) -> list:
    if isinstance(param, CategoricalParam):
        return list(param.choices)
    if param.grid is not None:
        return list(param.grid)
    return [param.low, param.high]


def _format_errors(err: ValidationError, with_path: bool = True) -> str:
    lines = []
    for item in err.errors():
        # Drop pydantic's union-member tags (e.g. "float") so the path reads like the file.
        loc = [str(p) for p in item["loc"] if p not in ("float", "int", "categorical")
               and not str(p).startswith("function-")]
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown key"
        elif item["type"] == "missing":
            msg = "required but missing"
        elif "input" in item and item["type"] != "value_error" and with_path:
            msg = f"{msg} (got {item['input']!r})"
        # A whole-spec check has no location: its message names the path itself.
        lines.append(f"{'.'.join(loc)}: {msg}" if loc and with_path else msg)
    # "; " separates the errors: no single message may contain it.
    return "; ".join(lines)


def load_spec(source: str | os.PathLike | Mapping[str, Any] | StudySpec) -> StudySpec:
    """Parse and validate a study file (TOML path) or an equivalent dict.

    Raises:
        SpecError: the file cannot be read, is not TOML, or a field is invalid; the message
            names each offending field path and what was expected.

    Example:
        >>> spec = load_spec({"study": {"name": "demo", "n_trials": 4},
        ...                   "search_space": {"lr": {"type": "float", "low": 1e-3,
        ...                                           "high": 0.1, "log": True}}})
        >>> spec.study.sampler.name, spec.study.objectives
        ('tpe', ('accuracy', 'energy_j'))
        >>> load_spec({"study": {"name": "demo", "n_trials": -1}})
        Traceback (most recent call last):
        ...
        ecotune.spec.SpecError: study.n_trials: Input should be greater than 0 (got -1)
    """
    if isinstance(source, StudySpec):
        return source
    if isinstance(source, Mapping):
        raw: Any = source
        where = ""
    else:
        path = Path(source)
        where = f"{path}: "
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise SpecError(f"{path}: cannot read the study file ({err.strerror})") from None
        except UnicodeDecodeError:
            raise SpecError(f"{path}: the study file is not UTF-8 text") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise SpecError(f"{path}: not valid TOML: {err}") from None
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(where + _format_errors(err)) from None
