"""A trained model's inference energy, measured: record_model(..., measure_inference=True)
and ``[energy] inference = "measured"`` run the model on the sample in a meter window of
its own, store joules per sample, latency per batch and the meter, and make
``inference_energy_measured_j`` an objective and a budget beside the hardware estimates."""

from __future__ import annotations

import math

import optuna
import pytest
import torch
from torch import nn

import ecotune
from ecotune.energy import Measurement, Meter
from ecotune.search import measure_inference_energy
from ecotune.spec import SpecError, load_spec
from tests.conftest import tiny_spec


class WindowMeter(Meter):
    """Every window, whatever it holds, measures ``energy_j`` joules in ``duration_s``:
    the figures derived from it are exact."""

    name = "fixed"
    devices = ("cpu",)

    def __init__(self, energy_j: float = 2.0, duration_s: float = 0.5) -> None:
        super().__init__()
        self.energy_j, self.duration_s = energy_j, duration_s
        self.windows = 0

    def _start(self) -> None:
        self.windows += 1

    def _reading(self) -> Measurement:
        return Measurement(self.duration_s, self.energy_j, self.energy_j, None, None, None,
                           self.name, True)

    def _lap(self, exact: bool = False) -> Measurement:
        return self._reading()

    def _stop(self) -> Measurement:
        return self._reading()


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


SAMPLE = torch.rand(8, 1, 8, 8)


def test_a_fixed_number_of_batches_in_a_window_of_its_own() -> None:
    meter = WindowMeter(energy_j=2.0, duration_s=0.5)
    got = measure_inference_energy(_net(), SAMPLE, meter, batches=5, max_s=math.inf)
    assert meter.windows == 1
    assert got["batches"] == 5 and got["batch_size"] == 8
    assert got["energy_per_sample_j"] == pytest.approx(2.0 / (5 * 8))
    assert got["latency_per_batch_s"] == pytest.approx(0.5 / 5)
    assert (got["meter"], got["is_estimate"], got["device"]) == ("fixed", True, "cpu")
    # The time cap: with no time at all, one batch (the one that was already running).
    assert measure_inference_energy(_net(), SAMPLE, meter, max_s=0.0)["batches"] == 1


def test_record_model_stores_it_beside_the_estimates_after_the_block() -> None:
    meter = WindowMeter()
    study = ecotune.create_study(storage=None, sampler="random", seed=0,
                                 objectives=("accuracy", "inference_energy_measured_j"),
                                 budgets={"inference_energy_measured_j": 1e-3})
    model = _net()

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        with ecotune.measure(trial, meter) as m:
            m.report(1, 0.5)
            with pytest.raises(RuntimeError, match="after the block"):
                m.record_model(model, SAMPLE, measure_inference=True)
        m.record_model(model, SAMPLE, measure_inference=True)
        assert not m.on_front()  # over its measured-inference budget: infeasible
        return m.accuracy, m.inference_energy_measured_j

    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    inference = trial.user_attrs["inference"]
    assert inference["asic_pj"] > 0 and inference["eyeriss_rel"] > 0  # the estimates stay
    measured = inference["measured"]
    assert 1 <= measured["batches"] <= 20
    assert measured["energy_per_sample_j"] == pytest.approx(2.0 / (measured["batches"] * 8))
    assert trial.values[1] == measured["energy_per_sample_j"]
    assert trial.constraints["inference_energy_measured_j"] == pytest.approx(
        measured["energy_per_sample_j"] - 1e-3)
    assert meter.windows == 2  # the training window, then the inference's own
    assert trial.user_attrs["energy_j"] == 2.0  # the training window's, not the sum


def test_a_sample_that_does_not_fit_is_one_line_and_stores_nothing() -> None:
    study = ecotune.create_study(storage=None, sampler="random", seed=0)
    trial = study.ask()
    with ecotune.measure(trial, WindowMeter()) as m:
        m.report(1, 0.5)
    with pytest.raises(ValueError) as err:
        m.record_model(_net(), torch.rand(8, 3, 5, 5), measure_inference=True)
    message = str(err.value)
    assert "shape (8, 3, 5, 5) does not fit the model" in message and "\n" not in message
    with pytest.raises(ValueError, match="non-empty batch tensor"):
        m.record_model(_net(), [1, 2, 3], measure_inference=True)
    assert "inference" not in study.trials[0].user_attrs
    assert m.inference is None


def test_study_files_ask_for_it_and_the_builtin_trainer_measures() -> None:
    spec = tiny_spec(storage="sqlite:///m.db", n_trials=1,
                     objectives=["accuracy", "inference_energy_measured_j"])
    spec["training"] = {"epochs": 1, "batch_size": 128}
    with pytest.raises(SpecError, match='needs energy.inference = "measured"'):
        load_spec(spec)
    spec["energy"] = {"meter": "cputime", "inference": "measured"}
    study = ecotune.run(spec)
    trial = study.trials[0]
    measured = trial.user_attrs["inference"]["measured"]
    assert trial.values[1] == measured["energy_per_sample_j"] > 0
    assert measured["meter"] == "cputime" and measured["is_estimate"] is True
    assert measured["latency_per_batch_s"] > 0
    assert measured["batch_size"] == 128
    with pytest.raises(SpecError, match="budgets.inference_energy_measured_j needs"):
        load_spec({**spec, "energy": {}, "study": {**spec["study"],
                                                    "objectives": ["accuracy", "energy_j"]},
                   "budgets": {"inference_energy_measured_j": 1.0}})
