"""Own training loops get what the built-in trainer has: per-epoch reports with energy,
energy-aware early stopping, trial and study energy budgets, inference estimates, reports,
and a PyTorch Lightning callback."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import optuna
import pytest
import torch
from torch import nn

import ecotune
from ecotune.data import load_data
from ecotune.energy import Measurement, Meter
from ecotune.report import learning_curves
from tests.conftest import require_component

EPOCHS = 8


class StepMeter(Meter):
    """A deterministic meter: every read costs ``step_j`` joules more than the last, so
    each epoch (one lap) costs exactly that."""

    name = "step"
    devices = ("cpu",)

    def __init__(self, step_j: float = 1.0) -> None:
        super().__init__()
        self.step_j = step_j

    def _start(self) -> None:
        self._reads = 0

    def _reading(self) -> Measurement:
        energy_j = self._reads * self.step_j
        return Measurement(float(self._reads), energy_j, energy_j, None, None, None,
                           self.name, True)

    def _lap(self, exact: bool = False) -> Measurement:
        self._reads += 1
        return self._reading()

    def _stop(self) -> Measurement:
        return self._reading()


def _digits_objective(meter="cputime", epochs: int = EPOCHS, on_stop: str = "prune",
                      width_meter=None):
    """An own loop on digits; its meter is ``meter`` (a name, or a class or function
    that makes one), or ``width_meter(hidden)`` for a meter that depends on the width."""
    data = load_data("digits")

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        lr = trial.suggest_float("lr", 1e-4, 0.3, log=True)
        hidden = trial.suggest_categorical("hidden", [16, 1024])
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(),
                              nn.Linear(hidden, 10))
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        window_meter = (width_meter(hidden) if width_meter is not None
                        else meter if isinstance(meter, str) else meter())
        with ecotune.measure(trial, epochs=epochs, meter=window_meter) as m:
            for epoch in range(1, epochs + 1):
                model.train()
                for i in range(0, len(data.y_train), 32):
                    loss = nn.functional.cross_entropy(model(data.x_train[i:i + 32]),
                                                       data.y_train[i:i + 32])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                model.eval()
                with torch.no_grad():
                    accuracy = (model(data.x_val).argmax(1) == data.y_val).float().mean()
                m.report(epoch, float(accuracy), loss=loss.item())
                if m.should_stop():
                    if on_stop == "prune":
                        raise optuna.TrialPruned(m.stop_reason)
                    break
        m.record_model(model, data.x_val[:64])
        return m.accuracy, m.energy_j

    return objective


def _study(name: str, **rules) -> optuna.Study:
    return ecotune.create_study(name, storage=None, sampler="random", seed=3, **rules)


def test_reports_store_the_learning_curve_with_energy_and_extra_values() -> None:
    study = _study("curve")
    study.optimize(_digits_objective(StepMeter), n_trials=1)
    trial = study.trials[0]
    curve = trial.user_attrs["training"]["learning_curve"]
    assert [p["epoch"] for p in curve] == list(range(1, EPOCHS + 1))
    assert [p["energy_j"] for p in curve] == [float(e) for e in range(1, EPOCHS + 1)]
    assert all("loss" in p and 0 <= p["val_accuracy"] <= 1 for p in curve)
    assert trial.user_attrs["training"]["stop_reason"] == "completed"
    assert trial.values[0] == curve[-1]["val_accuracy"]
    inference = trial.user_attrs["inference"]
    assert inference["asic_pj"] > 0 and inference["sample_size"] == 64
    assert [p["type"] for p in inference["profile"]] == ["Linear", "Linear"]
    # The report draws own-loop curves like the built-in trainer's.
    assert set(learning_curves(study)["trial"]) == {0}


def test_a_stored_curve_point_holds_every_field_of_the_epoch_record() -> None:
    # as_attr spells the fields out (it runs once per epoch of every stored curve): a
    # field added to EpochRecord must reach the stored point too.
    import dataclasses

    from ecotune.epochs import EpochRecord

    record = EpochRecord(3, 0.25, 0.75, 1.5, 2.5, decisions=("freeze",),
                         extra={"val_loss": 0.3})
    point = record.as_attr()
    fields = [f.name for f in dataclasses.fields(EpochRecord) if f.name != "extra"]
    assert list(point) == [*fields, "val_loss"]
    assert point == {**{name: getattr(record, name) for name in fields},
                     "decisions": ["freeze"], "val_loss": 0.3}


def test_energy_aware_early_stopping_saves_search_energy_at_the_same_best_accuracy(
        ) -> None:
    # Deterministic energy that grows with the width, as a real meter's does: an epoch
    # of the 1024-wide net costs 64 J, of the 16-wide one 1 J. (A real meter's energies
    # differ from run to run: the two studies' sums were once 22.32 J and 21.55 J, the
    # wrong way round. With one step for every width, no trial was ever stopped: a
    # front point must beat the prediction in energy too.)
    def objective():
        return _digits_objective(width_meter=lambda hidden: StepMeter(step_j=hidden / 16))

    plain = _study("plain")
    plain.optimize(objective(), n_trials=12)
    stopped = _study("stopped", early_stopping={"enabled": True})
    stopped.optimize(objective(), n_trials=12)
    assert [t.params for t in plain.trials] == [t.params for t in stopped.trials]
    pruned = [t for t in stopped.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "no trial was stopped early"
    for t in pruned:
        assert t.user_attrs["training"]["stop_reason"] == "energy_aware_stop"
        record = t.user_attrs["early_stopping"]
        assert record["stopped_at_epoch"] == len(t.user_attrs["training"]["learning_curve"])
        assert record["predictions"]

    def spent_j(study: optuna.Study) -> float:
        return sum(t.user_attrs["energy_j"] for t in study.trials)

    def best(study: optuna.Study) -> float:
        return max(t.values[0] for t in study.best_trials)

    assert spent_j(stopped) < spent_j(plain)
    assert best(stopped) == pytest.approx(best(plain), abs=0.01)


def test_a_trial_energy_budget_stops_a_trial_and_keeps_it_off_the_front() -> None:
    study = _study("budget", budgets={"trial_energy_j": 4.5})
    objective = _digits_objective(StepMeter)
    study.optimize(objective, n_trials=1)  # 8 planned epochs of 1 J: over 4.5 J
    over = study.trials[0]
    assert over.user_attrs["training"]["stop_reason"] == "trial_energy_budget"
    assert len(over.user_attrs["training"]["learning_curve"]) == 4  # 4 + 1 > 4.5
    assert over.state == optuna.trial.TrialState.PRUNED  # the loop raised TrialPruned
    assert over.constraints == {"trial_energy_j": pytest.approx(8.0 - 4.5)}
    study.optimize(_digits_objective(StepMeter, epochs=3), n_trials=1)
    within = study.trials[1]
    assert within.constraints == {"trial_energy_j": pytest.approx(3.0 - 4.5)}
    assert [t.number for t in study.best_trials] == [1]
    assert set(ecotune.pareto_front(study)["trial"]) == {1}


def test_a_trial_over_its_budget_that_returns_its_values_is_infeasible() -> None:
    study = _study("budget-complete", budgets={"trial_energy_j": 4.5})
    study.optimize(_digits_objective(StepMeter, on_stop="complete"), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.constraints["trial_energy_j"] > 0
    assert study.best_trials == [] and ecotune.pareto_front(study).empty


def test_a_study_energy_budget_stops_study_optimize_across_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    study = ecotune.create_study("spent", storage=url, sampler="random", seed=0,
                                 budgets={"study_energy_j": 20.0})
    study.optimize(_digits_objective(lambda: StepMeter(step_j=1.0)), n_trials=10)
    states = [t.state.name for t in study.trials]
    # 8 J per trial: after 3 trials 24 J >= 20 J, so the 4th ends at once, untrained.
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED"]
    assert "study energy budget spent" in study.trials[3].user_attrs["stop_reason"]
    assert "energy_j" not in study.trials[3].user_attrs  # no window was opened
    # Another worker on the same storage (its own study object) starts nothing either.
    other = optuna.load_study(study_name="spent", storage=url)
    other.optimize(_digits_objective(lambda: StepMeter(step_j=1.0)), n_trials=5)
    assert [t.state.name for t in other.trials][4:] == ["PRUNED"]


def test_rules_are_validated_like_study_files_and_stored_in_the_study() -> None:
    with pytest.raises(ecotune.SpecError, match=r"budgets\.trial_energy_j: .*greater than 0"):
        ecotune.create_study("bad", storage=None, budgets={"trial_energy_j": -1.0})
    with pytest.raises(ecotune.SpecError, match=r"early_stopping\.margn"):
        ecotune.create_study("bad", storage=None, early_stopping={"margn": 0.1})
    study = ecotune.create_study("ok", storage=None, early_stopping={"enabled": True},
                                 budgets={"study_energy_j": 100.0})
    rules = study.user_attrs["ecotune.rules"]
    assert rules["early_stopping"]["enabled"] is True
    assert rules["budgets"]["study_energy_j"] == 100.0


def test_objectives_returned_in_the_wrong_order_are_warned_about() -> None:
    study = _study("swapped")

    def swapped(trial: optuna.Trial) -> tuple[float, float]:
        trial.suggest_float("x", 0, 1)
        with ecotune.measure(trial, meter=StepMeter(step_j=2.0), epochs=1) as m:
            m.report(1, 0.9)
        return m.energy_j, m.accuracy  # energy first: wrong

    study.optimize(swapped, n_trials=1)
    with pytest.warns(UserWarning, match=r"trial 0 returned energy_j = 0.9 .* recorded 2 J"):
        study.optimize(swapped, n_trials=1)


def test_lightning_callback_reports_and_stops_a_real_trainer(tmp_path: Path) -> None:
    require_component(importlib.util.find_spec("pytorch_lightning") is not None,
                      "pytorch_lightning")
    import pytorch_lightning as pl

    from ecotune.integration import EnergyCallback

    data = load_data("digits")
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.x_train, data.y_train), batch_size=64)
    val = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data.x_val, data.y_val), batch_size=256)

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_acc", (self.net(x).argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        trial.suggest_float("x", 0, 1)
        callback = EnergyCallback(trial, monitor="val_acc", meter=StepMeter())
        trainer = pl.Trainer(max_epochs=6, callbacks=[callback], logger=False,
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, default_root_dir=tmp_path)
        trainer.fit(Tiny(), loader, val)
        return callback.window.accuracy, callback.window.energy_j

    study = _study("lightning", budgets={"trial_energy_j": 3.5})
    study.optimize(objective, n_trials=1)
    training = study.trials[0].user_attrs["training"]
    # 1 J per epoch, 6 planned, 3.5 J allowed: the Trainer stops after epoch 3.
    assert training["stop_reason"] == "trial_energy_budget"
    assert [p["epoch"] for p in training["learning_curve"]] == [1, 2, 3]
    assert study.trials[0].constraints["trial_energy_j"] > 0


def test_returning_the_energy_at_the_last_report_is_not_taken_for_a_swap() -> None:
    """A Trainer's search returns the values of its last evaluation (HFEnergyCallback):
    energy a little short of the window's own, which closes later."""

    class TailMeter(StepMeter):
        def _stop(self) -> Measurement:  # the close costs one more step
            self._reads += 1
            return self._reading()

    study = _study("last-report")

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        trial.suggest_float("x", 0, 1)
        with ecotune.measure(trial, meter=TailMeter(step_j=2.0), epochs=1) as m:
            m.report(1, 0.9)
        assert (m.curve[-1].energy_j, m.energy_j) == (2.0, 4.0)
        return m.accuracy, m.curve[-1].energy_j

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        study.optimize(objective, n_trials=2)
