"""Study files become a validated spec; bad ones get an error naming the field path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from ecotune.spec import SpecError, load_spec
from tests.conftest import tiny_spec

MINIMAL = {"study": {"name": "s"}}


def test_defaults_of_a_minimal_spec() -> None:
    spec = load_spec(MINIMAL)
    assert spec.study.storage == "sqlite:///ecotune.db"
    assert spec.study.sampler.name == "tpe"
    assert spec.study.objectives == ("accuracy", "energy_j")
    assert spec.study.n_trials is None
    assert spec.data.name == "digits"
    assert spec.model.name == "cnn"
    assert spec.training.eat_lambda == 0.0
    assert spec.training.eat_sigma == 1e-4
    assert spec.search_space == {}


def test_toml_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[study]\nname = "t"\nsampler = "grid"\n'
        '[search_space]\n'
        'lr = { type = "float", low = 1e-3, high = 1e-1, log = true, grid = [1e-3, 1e-2] }\n'
        'optimizer = { type = "categorical", choices = ["sgd", "adam"] }\n'
        'epochs = { type = "int", low = 2, high = 6, step = 2 }\n'
        'eat_lambda = { type = "float", low = 0, high = 2, grid = [0, 1] }\n')
    spec = load_spec(path)
    assert spec.grid() == {"lr": [1e-3, 1e-2], "optimizer": ["sgd", "adam"],
                           "epochs": [2, 4, 6], "eat_lambda": [0.0, 1.0]}


def test_sampler_table_with_options() -> None:
    spec = load_spec({"study": {"name": "s", "sampler": {"name": "tpe",
                                                         "options": {"n_startup_trials": 3}}}})
    assert spec.study.sampler.options == {"n_startup_trials": 3}


def test_int_written_for_a_float_knob_is_accepted() -> None:
    assert load_spec({"study": {"name": "s"}, "training": {"eat_lambda": 1}}
                     ).training.eat_lambda == 1.0


def _error(raw: dict) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(raw)
    return str(info.value)


def _with(path: str, value: object) -> dict:
    raw = copy.deepcopy(tiny_spec())
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("study.nmae", "x", "study.nmae: unknown key"),
        ("study.n_trials", "10", "study.n_trials: Input should be a valid integer"),
        ("study.n_trials", 0, "study.n_trials: Input should be greater than 0"),
        ("study.sampler", "cmaes", "study.sampler.name: Input should be 'grid', 'random'"),
        ("study.objectives", ["accuracy", "joules"], "unknown objective 'joules'"),
        ("study.objectives", [], "needs at least one objective"),
        ("study.storage", "ecotune.db",
         "study.storage: 'ecotune.db' is not a storage URL: for a SQLite file write "
         "'sqlite:///ecotune.db'"),
        ("data.name", "imagenet", "data.name: Input should be 'digits', 'fake', 'fashion_mnist'"),
        ("model.name", "vgg", "model.name: Input should be 'mlp', 'cnn', 'resnet18' or"),
        ("model.width", -1.0, "model.width: Input should be greater than 0"),
        ("training.optimizer", "lbfgs", "training.optimizer: Input should be"),
        ("training.eat_lambda", -0.5, "training.eat_lambda: Input should be greater than or"),
        ("training.epochs", 1.5, "training.epochs: Input should be a valid integer"),
        ("energy.country", "us", "energy.country: String should match pattern"),
        ("energy.country", "XYZ", "energy.country: unknown country code 'XYZ'"),
        ("search_space.lr.low", 0.0, "search_space.lr: low must be > 0 with log = true"),
        ("search_space.lr.high", 1e-4, "search_space.lr: low must be <= high"),
        ("search_space.lr.type", "double", "search_space.lr: Input tag 'double'"),
        ("search_space.lr.lo", 1.0, "search_space.lr.lo: unknown key"),
        ("search_space.dropout", {"type": "float", "low": 0.0, "high": 0.5},
         "search_space: unknown knob 'dropout'"),
        ("search_space.width.choices", [], "search_space.width.choices: needs at least one"),
        ("search_space.width.choices", [0.5, 0.5], "lists a choice twice"),
        ("search_space.eat_lambda", {"type": "float", "low": -1.0, "high": 1.0},
         "search_space.eat_lambda: value -1.0 is not a valid eat_lambda: Input should be "
         "greater than or equal to 0"),
        ("search_space.optimizer", {"type": "categorical", "choices": ["sgd", "rmsprop"]},
         "search_space.optimizer: value 'rmsprop' is not a valid optimizer: Input should be "
         "'sgd', 'adam' or 'adamw'"),
    ],
)
def test_errors_name_the_field_path(path: str, value: object, expected: str) -> None:
    assert expected in _error(_with(path, value))


def test_missing_study_name() -> None:
    assert "study.name: required but missing" in _error({"study": {}})


def test_unknown_top_level_section() -> None:
    assert "trainer: unknown key" in _error({**MINIMAL, "trainer": {}})


def test_grid_sampler_needs_a_grid_for_floats() -> None:
    message = _error(_with("study.sampler", "grid"))
    assert "search_space.lr: the grid sampler needs `grid = [...]`" in message


def test_grid_sampler_needs_a_search_space() -> None:
    assert "grid sampler needs a non-empty search_space" in _error(
        {"study": {"name": "g", "sampler": "grid"}})


def test_grid_values_must_lie_in_the_range() -> None:
    raw = _with("search_space.lr.grid", [1e-3, 0.5])
    assert "grid value 0.5 is outside" in _error(raw)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the study file"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nname = 1\n")
    with pytest.raises(SpecError, match="bad.toml: not valid TOML"):
        load_spec(bad)
    typed = tmp_path / "typed.toml"
    typed.write_text('[study]\nname = "x"\nn_trials = "ten"\n')
    with pytest.raises(SpecError, match=r"typed.toml: study.n_trials: .*valid integer"):
        load_spec(typed)


def test_overrides_are_validated_and_replace_fields() -> None:
    spec = load_spec(tiny_spec())
    changed = spec.with_overrides(n_trials=7, sampler="tpe", study_name="other", storage=None)
    assert (changed.study.n_trials, changed.study.sampler.name, changed.study.name) == (
        7, "tpe", "other")
    assert changed.study.storage == spec.study.storage
    with pytest.raises(SpecError, match="study.sampler.name"):
        spec.with_overrides(sampler="anneal")
    with pytest.raises(SpecError, match="not a study setting"):
        spec.with_overrides(epochs=3)


def test_training_seed_defaults_to_the_study_seed_and_is_the_trainings_alone() -> None:
    assert load_spec(MINIMAL).training.seed == 0
    spec = load_spec({"study": {"name": "s", "seed": 5}})
    assert (spec.study.seed, spec.training.seed) == (5, 5)
    own = load_spec({"study": {"name": "s", "seed": 5}, "training": {"seed": 2}})
    assert (own.study.seed, own.training.seed) == (5, 2)
    # The sampler seed is the study's: replacing it leaves the training seed as it was.
    assert spec.with_overrides(seed=9).training.seed == 5
    assert spec.with_settings(training={"epochs": 2}, study={"seed": 9}).training.seed == 5
    # Stored and read back (a worker's copy): the same spec.
    assert load_spec(spec.model_dump(mode="json")) == spec
    with pytest.raises(SpecError, match="training.seed"):
        load_spec({"study": {"name": "s"}, "training": {"seed": "1"}})


def test_with_settings_validates_only_what_changes() -> None:
    spec = load_spec(tiny_spec())
    cpu = spec.with_settings(training={"device": "cpu"})
    assert cpu.training.device == "cpu" and cpu.model is spec.model  # not validated again
    assert cpu.training.model_copy(update={"device": "auto"}) == spec.training
    assert spec.with_settings() is spec and spec.with_overrides(seed=None) is spec
    with pytest.raises(SpecError, match="training.device"):
        spec.with_settings(training={"device": "gpu"})
    with pytest.raises(SpecError, match="early_stopping needs the objectives"):
        spec.with_settings(early_stopping={"enabled": True},
                           study={"objectives": ["accuracy"]})
    with pytest.raises(SpecError, match="search_space: not a section"):
        spec.with_settings(search_space={"lr": {}})
    # Whether the file named a storage is kept (the commands choose a storage by it).
    assert "storage" not in load_spec(MINIMAL).with_overrides(n_trials=2).study.model_fields_set


def test_data_options_come_from_the_data_package() -> None:
    from ecotune.data import DATASET_OPTIONS

    fake = load_spec({"study": {"name": "s"}, "data": {"name": "fake", "n_samples": 50}})
    assert fake.data.loader_options() == {
        "n_samples": 50, "image_shape": (1, 28, 28), "n_classes": 10, "test_fraction": 0.2,
        "train_samples": None}
    stored = load_spec({"study": {"name": "s"}}).model_dump(mode="json")["data"]
    assert not set(stored) & {k for k, v in DATASET_OPTIONS.items() if "digits" not in v}
    image = load_spec({"study": {"name": "s"}, "data": {"name": "mnist", "val_fraction": 0.1}})
    assert image.data.loader_options() == {"val_fraction": 0.1, "train_samples": None,
                                           "root": None, "download": False}


def test_the_data_options_import_no_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, ecotune.data, ecotune.spec; ecotune.data.options_for; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False"
