"""The bulk read of trials gives exactly what Optuna's own read gives, on SQLite and
PostgreSQL, for every filter Optuna's trial cache uses."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from ecotune.storage import BulkReadRDBStorage, open_storage

State = optuna.trial.TrialState


def _fill(storage: optuna.storages.RDBStorage) -> int:
    """A study with every kind of row: each distribution, infinite values, intermediate
    values (NaN included), user and system attributes, constraints, each state."""
    study = optuna.create_study(study_name="r", storage=storage,
                                directions=["maximize", "minimize"])
    for i in range(12):
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_int("layers", 1, 4)
        trial.suggest_categorical("opt", ["adam", "sgd", None])
        # Trial.report refuses two objectives; the storage stores them all the same.
        storage.set_trial_intermediate_value(trial._trial_id, 1,
                                             float("nan") if i == 3 else 0.1 * i)
        storage.set_trial_intermediate_value(trial._trial_id, 2,
                                             float("inf") if i == 5 else 0.2 * i)
        trial.set_user_attr("training", {"learning_curve": [{"epoch": 1, "e": 0.5 * i}]})
        trial.set_user_attr("energy_j", 1.5 * i)
        if i % 3 == 0:
            trial.set_constraint("trial_energy_j", i - 5.0)
        if i % 4 == 1:
            study.tell(trial, state=State.FAIL)
        elif i % 4 == 2:
            study.tell(trial, [float("inf") if i == 2 else 0.5, float("-inf")])
        elif i < 10:
            study.tell(trial, [0.1 * i, 2.0 * i])
        # 10 and 11 stay running
    study.enqueue_trial({"lr": 0.01})  # a waiting trial
    return study._study_id


def _same(a: list[optuna.trial.FrozenTrial], b: list[optuna.trial.FrozenTrial]) -> None:
    assert [t.number for t in a] == [t.number for t in b]
    for x, y in zip(a, b):
        nan = {k for k, v in y.intermediate_values.items() if math.isnan(v)}
        assert {k for k, v in x.intermediate_values.items() if math.isnan(v)} == nan
        for name in ("state", "values", "datetime_start", "datetime_complete", "params",
                     "distributions", "user_attrs", "system_attrs", "_trial_id"):
            assert getattr(x, name) == getattr(y, name), name
        assert {k: v for k, v in x.intermediate_values.items() if k not in nan} == {
            k: v for k, v in y.intermediate_values.items() if k not in nan}
        assert list(x.params) == list(y.params)  # the order of suggestion


@pytest.fixture
def new_york() -> Iterator[None]:
    """Local time other than UTC (times are stored in UTC and read back as local)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_the_bulk_read_equals_optunas_read(where: str, tmp_path: Path, request, new_york,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    url = (f"sqlite:///{tmp_path}/r.db" if where == "sqlite"
           else request.getfixturevalue("postgres_url"))
    storage = open_storage(url)
    assert isinstance(storage, BulkReadRDBStorage)
    study_id = _fill(storage)
    ids = [t._trial_id for t in storage.get_all_trials(study_id)]
    plain = optuna.storages.RDBStorage(url)
    cases = [(None, set(), -1), ((State.COMPLETE,), set(), -1),
             ((State.RUNNING, State.WAITING), set(), -1), (None, {ids[3], ids[10]}, ids[6]),
             (None, set(), ids[8]), (None, {ids[11]}, ids[-1])]
    expected = [plain._get_trials(study_id, *case) for case in cases]

    def optunas_read(*_args):
        raise AssertionError("the bulk read fell back to Optuna's")

    with monkeypatch.context() as patch:
        patch.setattr(optuna.storages.RDBStorage, "_get_trials", optunas_read)
        for case, trials in zip(cases, expected):
            _same(storage._get_trials(study_id, *case), trials)
    # Through Optuna's trial cache, as every study on it reads: the same trials.
    _same(optuna.load_study(study_name="r", storage=url).get_trials(),
          optuna.load_study(study_name="r", storage=plain).get_trials())


def test_a_missing_study_is_a_key_error_as_in_optuna(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path}/m.db")
    with pytest.raises(KeyError):
        storage.get_all_trials(12345)
