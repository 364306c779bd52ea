"""Build a big ecotune-like study in relational storage fast, for benchmarks/scale.py.

``study.add_trials`` costs about 16 ms per trial on SQLite here (SQLAlchemy ORM work, one
transaction per trial): 10,000 trials would take minutes. This writes the same rows
straight into Optuna's tables with one bulk insert per table, in one transaction. It uses
Optuna's table definitions (``optuna.storages._rdb.models``, private): a benchmark aid,
not something ecotune itself does. The study itself is created by
``ecotune.create_study``, and everything is read back through Optuna's public API.
"""

from __future__ import annotations

import datetime
import json
import math

import numpy as np
import optuna
from optuna.distributions import FloatDistribution, distribution_to_json
from optuna.storages._rdb import models
from sqlalchemy import insert

from ecotune.search import create_study
from ecotune.storage import open_storage

__all__ = ["build_study", "trial_user_attrs", "EPOCHS"]

#: Epochs in each stored learning curve (the user attribute is as big as a real one).
EPOCHS = 8
_DISTRIBUTIONS = {"lr": FloatDistribution(1e-4, 1e-1, log=True),
                  "width": FloatDistribution(0.25, 2.0)}


def trial_user_attrs(accuracy: float, energy_j: float, curve: list[dict]) -> dict:
    """The user attributes a built-in-trainer trial records (meter window, training
    summary with its learning curve, inference estimates with a per-layer profile)."""
    return {
        "energy_j": energy_j, "cpu_energy_j": energy_j * 0.3, "ram_energy_j": energy_j * 0.7,
        "duration_s": energy_j / 14, "co2_g": energy_j * 1e-4, "energy_meter": "codecarbon",
        "energy_is_estimate": True, "energy_scope": "process",
        "energy_details": {"sources": {"cpu": "codecarbon", "ram": "codecarbon"},
                           "alternatives_j": {"cputime": energy_j * 0.3}, "cpu_share": 1.0,
                           "warnings": []},
        "test_accuracy": accuracy,
        "training": {"val_accuracy": accuracy, "activation_density": 0.5, "n_params": 12345,
                     "macs": 67890, "budget_energy_ratio": None, "epochs_run": len(curve),
                     "stop_reason": "completed", "learning_curve": curve},
        "inference": {"asic_pj": 1.2e6, "asic_energy_ratio": 0.8, "eyeriss_rel": 0.9,
                      "eyeriss_energy_ratio": 0.85,
                      "profile": [{"layer": f"layer{i}", "type": "Conv2d" if i < 2 else
                                   "Linear", "share": 0.25} for i in range(4)]},
    }


def _trial_rows(n_trials: int, first_number: int, seed: int) -> list[dict]:
    """Plain data of ``n_trials`` trials: accuracy rises with energy, with noise (a front
    of a few dozen trials, as real studies have); 4 % failed, 4 % pruned, 10 % over a
    trial energy budget (a ``trial.set_constraint`` constraint > 0)."""
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n_trials):
        lr = float(10 ** rng.uniform(-4, -1))
        width = float(rng.uniform(0.25, 2.0))
        energy_j = float(rng.uniform(1.0, 30.0) * width)
        accuracy = float(np.clip(0.5 + 0.45 * (1 - math.exp(-energy_j / 8))
                                 - abs(rng.normal(0, 0.05)), 0.0, 1.0))
        fate = rng.random()
        state = ("FAIL" if fate < 0.04 else "PRUNED" if fate < 0.08 else "COMPLETE")
        curve = [{"epoch": e, "train_loss": 1.0 / e, "val_accuracy": accuracy * e / EPOCHS,
                  "duration_s": 0.1 * e, "energy_j": energy_j * e / EPOCHS}
                 for e in range(1, EPOCHS + 1)]
        trials.append({
            "number": first_number + i, "state": state,
            "values": [accuracy, energy_j] if state == "COMPLETE" else None,
            "params": {"lr": lr, "width": width},
            "user_attrs": trial_user_attrs(accuracy, energy_j, curve),
            "constraints": ({"trial_energy_j": energy_j - 25.0} if fate > 0.9 else {}),
        })
    return trials


def build_study(url: str, name: str, n_trials: int, seed: int = 0) -> optuna.Study:
    """A two-objective study (accuracy, energy_j) named ``name`` in ``url`` holding
    ``n_trials`` finished trials; returns it opened by a fresh storage object."""
    storage = open_storage(url)
    study = create_study(name, storage=storage, sampler="random", seed=seed)
    rows = _trial_rows(n_trials, 0, seed)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    engine = storage.engine
    with engine.begin() as conn:
        trial_table = models.TrialModel.__table__
        ids = conn.execute(
            insert(trial_table).returning(trial_table.c.trial_id,
                                          sort_by_parameter_order=True),
            [{"number": t["number"], "study_id": study._study_id,
              "state": optuna.trial.TrialState[t["state"]],
              "datetime_start": now, "datetime_complete": now} for t in rows],
        ).scalars().all()
        values, params, user_attrs, system_attrs = [], [], [], []
        for trial_id, t in zip(ids, rows):
            for objective, value in enumerate(t["values"] or []):
                values.append({"trial_id": trial_id, "objective": objective, "value": value,
                               "value_type": models.TrialValueModel.TrialValueType.FINITE})
            for pname, value in t["params"].items():
                dist = _DISTRIBUTIONS[pname]
                params.append({"trial_id": trial_id, "param_name": pname,
                               "param_value": dist.to_internal_repr(value),
                               "distribution_json": distribution_to_json(dist)})
            for key, value in t["user_attrs"].items():
                user_attrs.append({"trial_id": trial_id, "key": key,
                                   "value_json": json.dumps(value)})
            for key, value in t["constraints"].items():
                # The key trial.set_constraint writes in Optuna 5.
                system_attrs.append({"trial_id": trial_id, "key": f"constraints:{key}",
                                     "value_json": json.dumps(value)})
        for model, batch in ((models.TrialValueModel, values),
                             (models.TrialParamModel, params),
                             (models.TrialUserAttributeModel, user_attrs),
                             (models.TrialSystemAttributeModel, system_attrs)):
            if batch:
                conn.execute(insert(model.__table__), batch)
    storage.engine.dispose()
    return optuna.load_study(study_name=name, storage=open_storage(url))
