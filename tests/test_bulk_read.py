"""The bulk read of trials gives exactly what Optuna's own read gives, on SQLite and
PostgreSQL, for every filter Optuna's trial cache uses."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from ecotune.storage import BulkReadRDBStorage, StoredTrial, _bulk_read, open_storage, user_attr

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
        if i % 2:
            trial.set_user_attr("evaluation_energy_j", 0.25 * i)
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


@pytest.mark.parametrize("literal_ids", [1000, 0], ids=["ids-listed", "ids-subquery"])
@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_the_bulk_read_equals_optunas_read(where: str, literal_ids: int, tmp_path: Path,
                                           request, new_york,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Both ways of choosing the child rows: a few trials by their ids, many by a subquery.
    monkeypatch.setattr(_bulk_read, "_LITERAL_IDS", literal_ids)
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


# ------------------------------------------------------------- attributes read when needed


def _attr_queries(storage: BulkReadRDBStorage) -> list[str]:
    """The statements on ``storage`` that read user attributes, appended as they run."""
    from sqlalchemy import event

    seen: list[str] = []

    def before(_conn, _cursor, statement, *_args) -> None:
        if "trial_user_attributes" in statement:
            seen.append(statement)

    event.listen(storage.engine, "before_cursor_execute", before)
    return seen


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_user_attributes_are_read_when_first_needed(where: str, tmp_path: Path,
                                                     request) -> None:
    url = (f"sqlite:///{tmp_path}/u.db" if where == "sqlite"
           else request.getfixturevalue("postgres_url"))
    storage = open_storage(url)
    study_id = _fill(storage)
    expected = optuna.storages.RDBStorage(url)._get_trials(study_id, None, set(), -1)
    queries = _attr_queries(storage)
    trials = storage._get_trials(study_id, None, set(), -1)
    assert len(queries) == 1  # the read itself: the energy, and running trials' all
    # What the study's energy spent reads comes without another query, for every trial.
    assert [user_attr(t, "energy_j") for t in trials] == [
        t.user_attrs.get("energy_j") for t in expected]
    assert [user_attr(t, "evaluation_energy_j", 0.0) for t in trials] == [
        t.user_attrs.get("evaluation_energy_j", 0.0) for t in expected]
    assert len(queries) == 1
    # Any other attribute: the trial's chunk is fetched once, then answers from memory.
    assert user_attr(trials[0], "training") == expected[0].user_attrs["training"]
    assert len(queries) == 2
    _same(trials, expected)
    assert len(queries) == 2
    # A running trial's attributes came with the read: nothing waits to be fetched.
    running = [t for t in storage._get_trials(study_id, (State.RUNNING,), set(), -1)]
    assert len(queries) == 3
    assert [t.user_attrs for t in running] == [
        t.user_attrs for t in expected if t.state == State.RUNNING]
    assert len(queries) == 3


def test_an_undecoded_trial_behaves_as_a_frozen_trial(tmp_path: Path) -> None:
    import copy
    import pickle

    url = f"sqlite:///{tmp_path}/f.db"
    storage = open_storage(url)
    study_id = _fill(storage)
    plain = optuna.storages.RDBStorage(url)._get_trials(study_id, None, set(), -1)
    for read in (lambda t: t, copy.copy, copy.deepcopy, lambda t: pickle.loads(pickle.dumps(t))):
        trials = storage._get_trials(study_id, None, set(), -1)
        assert all(isinstance(t, StoredTrial) for t in trials)
        _same([read(t) for t in trials], plain)
    # Equality either way round (trials without a NaN: NaN equals nothing, in Optuna too).
    trials = [t for t in storage._get_trials(study_id, (State.COMPLETE,), set(), -1)
              if t.number != 3]
    done = [t for t in plain if t.state == State.COMPLETE and t.number != 3]
    assert trials == done
    assert done == [t for t in storage._get_trials(study_id, (State.COMPLETE,), set(), -1)
                    if t.number != 3]
    # Shown as a FrozenTrial, attributes decoded (in the order they were set).
    assert repr(storage._get_trials(study_id, None, set(), -1)[0]).startswith(
        "FrozenTrial(number=0, state=<TrialState.COMPLETE: 1>")
    assert "user_attrs={'training': {'learning_curve': [{'epoch': 1, 'e': 0.0}]}, " \
           "'energy_j': 0.0}" in repr(storage._get_trials(study_id, None, set(), -1)[0])
    trial = storage._get_trials(study_id, None, set(), -1)[0]
    trial.set_user_attr("note", 1)  # FrozenTrial's own setter, on the decoded attributes
    assert trial.user_attrs == {**plain[0].user_attrs, "note": 1}
    trial = storage._get_trials(study_id, None, set(), -1)[0]
    trial.user_attrs = {"a": 1}
    assert trial.user_attrs == {"a": 1}


def test_trials_read_from_threads_at_once_decode_once(tmp_path: Path) -> None:
    import threading

    url = f"sqlite:///{tmp_path}/t.db"
    storage = open_storage(url)
    study_id = _fill(storage)
    expected = [t.user_attrs for t in
                optuna.storages.RDBStorage(url)._get_trials(study_id, None, set(), -1)]
    trials = storage._get_trials(study_id, None, set(), -1)
    start = threading.Barrier(6)
    seen: list[list] = []

    def read() -> None:
        start.wait()
        seen.append([t.user_attrs for t in trials])

    threads = [threading.Thread(target=read) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 6 and all(attrs == expected for attrs in seen)
    assert all(a is b for a, b in zip(seen[0], seen[5]))  # one dict per trial


def test_attributes_of_a_study_deleted_meanwhile_are_an_error(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path}/d.db")
    study_id = _fill(storage)
    trials = storage._get_trials(study_id, (State.COMPLETE,), set(), -1)
    assert user_attr(trials[0], "energy_j") is not None  # read with the trial: still there
    storage.delete_study(study_id)
    with pytest.raises(KeyError, match="no longer stored"):
        _ = trials[0].user_attrs


def test_many_trials_come_in_chunks_that_decode_alone(tmp_path: Path) -> None:
    from ecotune.storage._lazy_trial import CHUNK_TRIALS

    url = f"sqlite:///{tmp_path}/c.db"
    storage = open_storage(url)
    study = optuna.create_study(study_name="c", storage=storage)
    n = CHUNK_TRIALS + 3
    study.add_trials([optuna.trial.create_trial(
        value=float(i), user_attrs={"energy_j": float(i), "curve": [{"epoch": i}] * 3})
        for i in range(n)])
    queries = _attr_queries(storage)
    trials = storage._get_trials(study._study_id, None, set(), -1)
    assert trials[-1].user_attrs == {"energy_j": n - 1.0, "curve": [{"epoch": n - 1}] * 3}
    assert len(queries) == 2  # the read, and the last chunk's three trials
    assert "_chunk" in trials[0].__dict__ and "_chunk" not in trials[-1].__dict__
    assert [t.user_attrs["curve"][0]["epoch"] for t in trials] == list(range(n))
    assert len(queries) == 3


@pytest.mark.slow
def test_workers_joining_a_stored_study_on_postgresql_keep_its_energy_budget(
        postgres_url: str) -> None:
    """Three workers (a study object, storage and trial cache each, as three processes
    have) join a study of 60 stored trials of 1 J: the energy those trials recorded,
    read with the trials, counts against the budget of every worker."""
    import threading

    from ecotune.execution import run_worker
    from ecotune.search import prepare

    data = {"study": {"name": "j", "storage": postgres_url, "sampler": "tpe", "seed": 0},
            "budgets": {"study_energy_j": 64.0}}
    _, study = prepare(data)
    study.add_trials([optuna.trial.create_trial(
        values=[0.5 + i / 200, 1.0], params={"x": i / 60},
        distributions={"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
        user_attrs={"energy_j": 1.0, "training": {"learning_curve": [{"epoch": 1}]}})
        for i in range(60)])

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("energy_j", 1.0)
        return x, 1.0

    errors: list[BaseException] = []

    def work() -> None:
        try:
            spec, own = prepare(data)
            run_worker(spec, own, 1000, objective)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    trials = optuna.load_study(study_name="j", storage=postgres_url).trials
    # 4 J left: 4 trials, and at most one more per other worker whose trial was in flight.
    assert 64 <= len(trials) <= 66
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert all(t.state == State.COMPLETE for t in trials)
    _same(open_storage(postgres_url)._get_trials(study._study_id, None, set(), -1),
          optuna.storages.RDBStorage(postgres_url)._get_trials(study._study_id, None,
                                                               set(), -1))
