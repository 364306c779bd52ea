"""Hugging Face ``Trainer`` users get what own loops have (ecotune.integration.HFEnergyCallback):
each evaluation a learning-curve point with energy, the study's budget stopping training,
the same trial attributes, inside ``trainer.hyperparameter_search(backend="optuna")`` and in
a plain Optuna objective; and bad input fails in one line.

A real Trainer (transformers and accelerate, installed by .ci/setup's test set-up) trains a
tiny model built from its config (no weights from a hub, no network) on scikit-learn's
bundled digits; the meter is a deterministic one, so each evaluation costs known joules."""

from __future__ import annotations

import importlib.util
import os
import types
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from torch import nn

import ecotune
from ecotune.data import load_data
from tests.conftest import require_component
from tests.test_own_loop import StepMeter

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def hf():
    """transformers, a tiny digits classifier built from its config, and the data (one
    import per module: importing transformers takes seconds)."""
    require_component(importlib.util.find_spec("transformers") is not None,
                      "transformers and accelerate")
    import transformers
    from transformers.modeling_outputs import SequenceClassifierOutput

    torch.set_num_threads(1)

    class DigitsConfig(transformers.PretrainedConfig):
        model_type = "ecotune-test-digits"

        def __init__(self, hidden: int = 16, **kwargs) -> None:
            self.hidden = hidden
            super().__init__(**kwargs)

    class DigitsClassifier(transformers.PreTrainedModel):
        config_class = DigitsConfig

        def __init__(self, config: DigitsConfig) -> None:
            super().__init__(config)
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, config.hidden), nn.ReLU(),
                                     nn.Linear(config.hidden, 10))
            self.post_init()

        def forward(self, pixel_values, labels=None):
            logits = self.net(pixel_values)
            loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
            return SequenceClassifierOutput(loss=loss, logits=logits)

    class Digits(torch.utils.data.Dataset):
        def __init__(self, x, y) -> None:
            self.x, self.y = x, y

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i):
            return {"pixel_values": self.x[i], "labels": self.y[i]}

    data = load_data("digits")

    def accuracy(prediction) -> dict[str, float]:
        return {"accuracy": float((np.argmax(prediction.predictions, 1)
                                   == prediction.label_ids).mean())}

    def arguments(path: Path, epochs: int = 3, **extra) -> transformers.TrainingArguments:
        return transformers.TrainingArguments(
            output_dir=str(path), num_train_epochs=epochs, eval_strategy="epoch",
            save_strategy="no", logging_strategy="no", report_to="none", use_cpu=True,
            disable_tqdm=True, per_device_train_batch_size=128,
            per_device_eval_batch_size=128, learning_rate=0.03, **extra)

    def model(hidden: int = 16) -> DigitsClassifier:
        torch.manual_seed(0)
        return DigitsClassifier(DigitsConfig(hidden=hidden))

    return types.SimpleNamespace(
        transformers=transformers, model=model, arguments=arguments, accuracy=accuracy,
        train=Digits(data.x_train[:256], data.y_train[:256]),
        val=Digits(data.x_val[:128], data.y_val[:128]), x_val=data.x_val)


def _ecotune_study(path: Path, **rules) -> tuple[optuna.Study, str]:
    storage = f"sqlite:///{path / 'hf.db'}"
    return ecotune.create_study(study_name="hf", storage=storage, sampler="random",
                                seed=0, **rules), storage


def test_hyperparameter_search_reports_each_evaluation_and_a_budget_stops_one(
        hf, tmp_path: Path) -> None:
    from ecotune.integration import HFEnergyCallback

    # 1 J per evaluation for the small model, 3 J for the wide one; 3 planned, 5 allowed.
    meter = StepMeter()
    callback = HFEnergyCallback(metric="eval_accuracy", meter=meter,
                                inference_sample=hf.x_val[:32], measure_inference=True)

    def model_init(trial):
        hidden = 16 if trial is None else trial.suggest_categorical("hidden", [16, 64])
        meter.step_j = 1.0 if hidden == 16 else 3.0
        return hf.model(hidden)

    trainer = hf.transformers.Trainer(
        model_init=model_init, args=hf.arguments(tmp_path), train_dataset=hf.train,
        eval_dataset=hf.val, compute_metrics=hf.accuracy, callbacks=[callback])
    study, storage = _ecotune_study(tmp_path, budgets={"trial_energy_j": 5.0})
    best = trainer.hyperparameter_search(
        backend="optuna", direction=["maximize", "minimize"], n_trials=2,
        hp_space=lambda trial: {},
        compute_objective=lambda metrics: (metrics["eval_accuracy"], metrics["energy_j"]),
        storage=storage, study_name="hf", load_if_exists=True,
        sampler=optuna.samplers.GridSampler({"hidden": [16, 64]}))

    trials = {t.params["hidden"]: t for t in optuna.load_study(
        study_name="hf", storage=storage).trials}
    assert set(trials) == {16, 64}
    small, wide = trials[16], trials[64]
    for trial in (small, wide):
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.user_attrs["energy_meter"] == "step"
        assert trial.user_attrs["energy_is_estimate"] is True
        assert trial.user_attrs["training"]["device"]["type"] == "cpu"
        inference = trial.user_attrs["inference"]  # after training, in its own window
        assert inference["asic_pj"] > 0 and inference["measured"]["meter"] == "step"
        assert inference["measured"]["batch_size"] == 32
    curve = small.user_attrs["training"]["learning_curve"]
    assert [p["epoch"] for p in curve] == [1, 2, 3]
    assert [p["energy_j"] for p in curve] == [1.0, 2.0, 3.0]
    assert [p["trainer_epoch"] for p in curve] == [1.0, 2.0, 3.0]
    assert all(0 <= p["val_accuracy"] <= 1 and p["val_loss"] > 0 for p in curve)
    assert small.user_attrs["training"]["stop_reason"] == "completed"
    assert small.values == [curve[-1]["val_accuracy"], 3.0]  # compute_objective's energy
    # The wide model: 3 J after evaluation 1, a second would make 6 J > 5 J: it stops.
    assert wide.user_attrs["training"]["stop_reason"] == "trial_energy_budget"
    assert [p["epoch"] for p in wide.user_attrs["training"]["learning_curve"]] == [1]
    assert wide.user_attrs["energy_j"] == 3.0
    assert wide.constraints == {"trial_energy_j": 3.0 * 3 - 5.0}  # at its 3 planned evals
    assert small.constraints == {"trial_energy_j": 3.0 - 5.0}
    assert [b.run_id for b in best] == [str(small.number)]  # the wide one is infeasible


def test_a_trial_predicted_dominated_stops_and_ends_pruned(hf, tmp_path: Path) -> None:
    from ecotune.integration import HFEnergyCallback

    # The first trial reaches 0.9 for 3 J; the second reads 0.5 at 3 J per evaluation:
    # predicted to end at 0.5 for 9 J, dominated, it stops after its first evaluation.
    meter, level = StepMeter(), {}
    callback = HFEnergyCallback(metric="eval_accuracy", meter=meter)

    def model_init(trial):
        hidden = 16 if trial is None else trial.suggest_categorical("hidden", [16, 64])
        meter.step_j, level["accuracy"] = (1.0, 0.9) if hidden == 16 else (3.0, 0.5)
        return hf.model(hidden)

    trainer = hf.transformers.Trainer(
        model_init=model_init, args=hf.arguments(tmp_path), train_dataset=hf.train,
        eval_dataset=hf.val, compute_metrics=lambda prediction: dict(level),
        callbacks=[callback])
    study, storage = _ecotune_study(tmp_path, early_stopping={"enabled": True,
                                                              "min_epochs": 1})
    study.enqueue_trial({"hidden": 16})
    study.enqueue_trial({"hidden": 64})
    trainer.hyperparameter_search(
        backend="optuna", direction=["maximize", "minimize"], n_trials=2,
        hp_space=lambda trial: {},
        compute_objective=lambda metrics: (metrics["eval_accuracy"], metrics["energy_j"]),
        storage=storage, study_name="hf", load_if_exists=True)

    first, second = optuna.load_study(study_name="hf", storage=storage).trials
    assert first.state == optuna.trial.TrialState.COMPLETE and first.values == [0.9, 3.0]
    assert second.state == optuna.trial.TrialState.PRUNED
    training = second.user_attrs["training"]
    assert training["stop_reason"] == "energy_aware_stop"
    assert [p["energy_j"] for p in training["learning_curve"]] == [3.0]
    assert second.user_attrs["early_stopping"]["stopped_at_epoch"] == 1


def test_a_plain_objective_that_builds_a_trainer(hf, tmp_path: Path) -> None:
    from ecotune.integration import HFEnergyCallback

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        hidden = trial.suggest_categorical("hidden", [16])
        callback = HFEnergyCallback(trial, metric="eval_accuracy", meter=StepMeter(0.5))
        trainer = hf.transformers.Trainer(
            model=hf.model(hidden), args=hf.arguments(tmp_path, epochs=2),
            train_dataset=hf.train, eval_dataset=hf.val, compute_metrics=hf.accuracy,
            callbacks=[callback])
        trainer.train()
        m = callback.window
        m.record_model(trainer.model, hf.x_val[:32])
        return m.accuracy, m.energy_j

    study, _ = _ecotune_study(tmp_path)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert [p["energy_j"] for p in trial.user_attrs["training"]["learning_curve"]] == [0.5, 1.0]
    assert trial.values[1] == trial.user_attrs["energy_j"]
    assert trial.user_attrs["inference"]["asic_pj"] > 0


def test_bad_input_is_one_line_and_stores_nothing_wrong(hf, tmp_path: Path) -> None:
    from ecotune.integration import HFEnergyCallback

    with pytest.raises(TypeError, match="must be an Optuna trial"):
        HFEnergyCallback({"lr": 0.1})
    with pytest.raises(ValueError, match="needs an inference_sample"):
        HFEnergyCallback(measure_inference=True)
    # Outside any trial: refused when training starts, before anything is measured.
    trainer = hf.transformers.Trainer(
        model=hf.model(), args=hf.arguments(tmp_path, epochs=1), train_dataset=hf.train,
        eval_dataset=hf.val, compute_metrics=hf.accuracy,
        callbacks=[HFEnergyCallback(metric="eval_accuracy", meter=StepMeter())])
    with pytest.raises(ValueError, match="outside an Optuna trial") as err:
        trainer.train()
    assert "\n" not in str(err.value)

    # A metric the Trainer never logs: named, with those it did log; the trial fails.
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        callback = HFEnergyCallback(trial, metric="eval_f1", meter=StepMeter())
        hf.transformers.Trainer(
            model=hf.model(), args=hf.arguments(tmp_path, epochs=1),
            train_dataset=hf.train, eval_dataset=hf.val, compute_metrics=hf.accuracy,
            callbacks=[callback]).train()
        return 0.0, 0.0

    study, _ = _ecotune_study(tmp_path)
    with pytest.raises(ValueError) as err:
        study.optimize(objective, n_trials=1, catch=())
    message = str(err.value)
    assert "'eval_f1'" in message and "'eval_accuracy'" in message and "\n" not in message
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert "eval_f1" in trial.user_attrs["fail_reason"]
    assert "learning_curve" not in trial.user_attrs.get("training", {})


def test_a_training_that_raises_leaves_no_window_open_on_the_meter(hf, tmp_path) -> None:
    from ecotune.integration import HFEnergyCallback

    meter = StepMeter()  # one meter: a window left open would share its readings

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        def metrics(prediction):
            if trial.number == 0:
                raise ValueError("compute_metrics failed")
            return hf.accuracy(prediction)

        callback = HFEnergyCallback(trial, metric="eval_accuracy", meter=meter)
        hf.transformers.Trainer(
            model=hf.model(), args=hf.arguments(tmp_path, epochs=1),
            train_dataset=hf.train, eval_dataset=hf.val, compute_metrics=metrics,
            callbacks=[callback]).train()
        return callback.window.accuracy, callback.window.energy_j

    study, _ = _ecotune_study(tmp_path)
    study.optimize(objective, n_trials=2, catch=(ValueError,))
    failed, second = study.trials
    assert failed.state == optuna.trial.TrialState.FAIL
    assert second.state == optuna.trial.TrialState.COMPLETE
    assert second.user_attrs["energy_attribution"] == "exclusive"
    assert second.user_attrs["energy_j"] == 1.0
