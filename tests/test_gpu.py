"""On a real CUDA GPU: training, low precision, the knobs and the energy meters.

Every test here is marked ``gpu`` and skips where ``torch.cuda.is_available()`` is False
(tests/conftest.py): CI has no GPU. benchmarks/gpu.py measures what these only check.
"""

from __future__ import annotations

import copy

import pytest
import torch

import ecotune
from ecotune.data import load_data
from ecotune.energy import meter_status
from ecotune.energy.hardware import inference_estimates
from ecotune.training import TrainConfig, train

pytestmark = pytest.mark.gpu


def _digits_config(**knobs) -> TrainConfig:
    return TrainConfig(**{"model": "cnn", "epochs": 2, "batch_size": 128, "device": "cuda",
                          **knobs})


def test_trains_on_the_gpu_with_the_data_moved_once() -> None:
    result = train(load_data("digits"), _digits_config())
    assert result.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in result.model.parameters())
    assert result.test_accuracy > 0.5 and result.low_precision_dtype is None


@pytest.mark.parametrize(("dtype", "expected"), [("auto", "float16"), ("float16", "float16"),
                                                 ("bfloat16", None)])
def test_low_precision_on_the_gpu(dtype: str, expected: str | None) -> None:
    if expected is None:
        expected = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    result = train(load_data("digits"), _digits_config(low_precision_at_epoch=1,
                                                       low_precision_dtype=dtype))
    assert result.low_precision_dtype == expected
    assert all(torch.isfinite(torch.tensor(r.train_loss)) for r in result.curve)
    assert result.test_accuracy > 0.3


def test_knobs_run_on_gpu_tensors_and_estimates_match_the_cpu() -> None:
    result = train(load_data("digits"), _digits_config(
        eat_lambda=0.5, energy_budget=0.5, input_keep_ratio=0.75, freeze_at_epoch=2,
        early_stopping_patience=1))
    assert result.budget_energy_ratio <= 0.5 + 1e-6
    sample = load_data("digits").x_val[:64] * result.input_mask
    on_gpu = inference_estimates(result.model, sample)
    on_cpu = inference_estimates(copy.deepcopy(result.model).cpu(), sample)
    assert on_gpu["asic_pj"] == pytest.approx(on_cpu["asic_pj"], rel=1e-4)
    assert on_gpu["eyeriss_rel"] == pytest.approx(on_cpu["eyeriss_rel"], rel=1e-4)


def test_a_study_records_the_gpu_it_trained_on() -> None:
    study = ecotune.run({
        "study": {"name": "gpu", "storage": "sqlite:///:memory:", "n_trials": 1,
                  "sampler": "random", "seed": 0},
        "model": {"name": "cnn"}, "training": {"epochs": 2, "device": "auto"}})
    trial = study.trials[0]
    device = trial.user_attrs["training"]["device"]
    assert device["type"] == "cuda" and device["index"] == 0
    assert device["name"] == torch.cuda.get_device_name(0)
    assert meter_status("nvml").available  # nvidia-ml-py is a dependency
    assert trial.user_attrs["gpu_energy_j"] > 0
    assert trial.user_attrs["energy_details"]["sources"]["gpu"] == "nvml"


def test_nvml_charges_the_gpu_trial_and_not_the_cpu_trial() -> None:
    x = torch.randn(4096, 4096, device="cuda")
    with ecotune.measure(meter="auto", device="cuda") as gpu_work:
        for _ in range(200):
            x = torch.tanh(x @ x)
    with ecotune.measure(meter="auto", device="cpu") as cpu_work:
        sum(i * i for i in range(200_000))
    assert gpu_work.measurement.gpu_j > 0
    assert cpu_work.measurement.gpu_j is None
