"""Optuna's per-trial writes and its look-up of a trial by number as plain SQL
(``ecotune.storage._plain_sql``, used by ``PerTrialRDBStorage``) store and return exactly
what Optuna's ORM does, raise Optuna's errors, and number trials as Optuna does under
concurrent creation, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest
from sqlalchemy import event, exc, text

from ecotune.storage import PerTrialRDBStorage, _plain_sql, heartbeat_follows, set_user_attrs

State = optuna.trial.TrialState


@pytest.fixture
def url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/w.db"
    return request.getfixturevalue("postgres_url")


def _run(study: optuna.Study) -> None:
    """Every kind of trial ending: complete (finite and infinite values), pruned, failed
    (no values), one still running; each distribution."""
    for i in range(6):
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_int("layers", 1, 4)
        trial.suggest_categorical("opt", ["adam", "sgd", None])
        # System attributes (a constraint, a rung's point), one written twice: the upsert.
        trial.set_constraint("energy", 0.5 * i - 1.0)
        trial.storage.set_trial_system_attr(trial._trial_id, "rung", {"epoch": i})
        trial.storage.set_trial_system_attr(trial._trial_id, "rung", {"epoch": i, "x": None})
        if i == 5:
            break  # stays running
        if i == 2:
            study.tell(trial, state=State.PRUNED)
        elif i == 3:
            study.tell(trial, state=State.FAIL)
        else:
            study.tell(trial, [float("inf") if i == 1 else 0.25 * i,
                               float("-inf") if i == 4 else 2.0 * i])


def _rows(url: str, study_name: str) -> dict[str, list]:
    """Every row of the study's trials, as stored (ids left out; times as their shape)."""
    engine = optuna.storages.RDBStorage(url).engine
    with engine.connect() as conn:
        study_id = conn.execute(text("SELECT study_id FROM studies WHERE study_name = :n"),
                                {"n": study_name}).scalar_one()
        trials = conn.execute(text(
            "SELECT trial_id, number, state, datetime_start, datetime_complete FROM trials "
            "WHERE study_id = :s ORDER BY trial_id"), {"s": study_id}).all()
        ids = [t[0] for t in trials]

        def child(sql: str) -> list:
            return sorted((ids.index(r[0]), *r[1:]) for r in conn.execute(text(sql)).all()
                          if r[0] in ids)

        def shape(value) -> str:  # SQLite: the stored text's form; PG: the Python type
            return ("NULL" if value is None else
                    "".join("9" if c.isdigit() else c for c in value)
                    if isinstance(value, str) else type(value).__name__)

        return {
            "trials": [(t[1], str(t[2]), shape(t[3]), shape(t[4])) for t in trials],
            "params": child("SELECT trial_id, param_name, param_value, distribution_json "
                            "FROM trial_params ORDER BY param_id"),
            "values": child("SELECT trial_id, objective, value, value_type FROM "
                            "trial_values"),
            "system attributes": child('SELECT trial_id, "key", value_json FROM '
                                       "trial_system_attributes"),
        }


@pytest.mark.parametrize("url", ["sqlite", "postgresql"], indirect=True)
def test_the_plain_sql_store_what_optunas_orm_stores(url: str, new_york) -> None:
    ours = PerTrialRDBStorage(url)
    assert _plain_sql.supported(ours.engine)
    directions = ["maximize", "minimize"]
    for name, storage in (("ours", ours), ("optuna", optuna.storages.RDBStorage(url))):
        _run(optuna.create_study(study_name=name, storage=storage, directions=directions,
                                 sampler=optuna.samplers.RandomSampler(seed=0)))
    assert _rows(url, "ours") == _rows(url, "optuna")
    # Read back through Optuna itself: the same trials, times within the run.
    a = optuna.load_study(study_name="ours", storage=url).trials
    b = optuna.load_study(study_name="optuna", storage=url).trials
    for x, y in zip(a, b, strict=True):
        for name in ("number", "state", "values", "params", "distributions", "user_attrs",
                     "system_attrs", "intermediate_values"):
            assert getattr(x, name) == getattr(y, name), name
        assert abs((x.datetime_start - y.datetime_start).total_seconds()) < 60
        assert (x.datetime_complete is None) == (y.datetime_complete is None)
        if x.datetime_complete is not None:
            assert x.datetime_start <= x.datetime_complete


@pytest.mark.parametrize("url", ["sqlite", "postgresql"], indirect=True)
def test_the_created_trial_is_the_one_stored(url: str, new_york) -> None:
    storage = PerTrialRDBStorage(url, heartbeat_interval=60)
    study = optuna.create_study(storage=storage)
    with heartbeat_follows():
        created = storage._create_new_trial(study._study_id)
    stored = optuna.storages.RDBStorage(url).get_trial(created._trial_id)
    assert (created.number, created.state, created.datetime_start) == (
        stored.number, stored.state, stored.datetime_start)
    with storage.engine.connect() as conn:  # its first heartbeat, with the trial
        beats = conn.execute(text("SELECT trial_id FROM trial_heartbeats")).scalars().all()
    assert beats == [created._trial_id]


@pytest.mark.parametrize("url", ["sqlite", "postgresql"], indirect=True)
def test_the_plain_sql_raise_optunas_errors(url: str) -> None:
    ours, theirs = PerTrialRDBStorage(url), optuna.storages.RDBStorage(url)
    study = optuna.create_study(study_name="e", storage=ours)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    study.tell(trial, 1.0)
    dist = optuna.distributions.FloatDistribution(0, 1)
    assert ours.get_trial_id_from_study_id_trial_number(study._study_id, 0) == trial._trial_id
    messages = []
    for storage in (ours, theirs):
        with pytest.raises(KeyError) as missing:
            storage.get_trial_id_from_study_id_trial_number(study._study_id, 5)
        messages.append(str(missing.value))
        with pytest.raises(KeyError):
            storage.create_new_trial(10_000)
        with pytest.raises(KeyError):
            storage.set_trial_param(10_000, "x", 0.5, dist)
        with pytest.raises(KeyError):
            storage.set_trial_state_values(10_000, State.COMPLETE, [1.0])
        with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
            storage.set_trial_param(trial._trial_id, "y", 0.5, dist)
        with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
            storage.set_trial_state_values(trial._trial_id, State.COMPLETE, [2.0])
        with pytest.raises(KeyError):
            storage.set_trial_system_attr(10_000, "k", 1)
        with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
            storage.set_trial_system_attr(trial._trial_id, "k", 1)
        running = storage.create_new_trial(study._study_id)
        with pytest.raises(ValueError, match="different distribution kind"):  # float, now a choice
            storage.set_trial_param(running, "x", 0,
                                    optuna.distributions.CategoricalDistribution(["a"]))
    assert messages[0] == messages[1]
    assert optuna.load_study(study_name="e", storage=url).trials[0].values == [1.0]


@pytest.mark.parametrize("url", ["sqlite", "postgresql"], indirect=True)
def test_trials_created_at_once_get_distinct_numbers(url: str) -> None:
    """Numbers are counted under Optuna's lock (the study row on PostgreSQL; SQLite's
    database lock): threads, each with its own storage object, as separate workers."""
    optuna.create_study(study_name="n", storage=url)
    created: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            storage = PerTrialRDBStorage(url)
            study_id = storage.get_study_id_from_name("n")
            for _ in range(10):
                created.append(storage._create_new_trial(study_id).number)
        except BaseException as err:  # noqa: BLE001 - seen by the test below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(created) == list(range(40))
    stored = [t.number for t in optuna.load_study(study_name="n", storage=url).trials]
    assert sorted(stored) == list(range(40))


def test_a_database_error_runs_optunas_own_write(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the plain SQL fails for a reason of the database's (e.g. locked), Optuna's
    own write runs instead, with its retries: the trial is still created and told, with
    the attributes it held for its end."""
    storage = PerTrialRDBStorage(f"sqlite:///{tmp_path}/f.db")
    study = optuna.create_study(storage=storage)

    def refused(*_args, **_kwargs):
        raise exc.OperationalError("INSERT", {}, Exception("database is locked"))

    for name in ("create_trial", "set_param", "set_finished_state_values",
                 "set_user_attrs", "trial_id_of_number"):
        monkeypatch.setattr(_plain_sql, name, refused)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 1:  # a write first: what the trial holds goes Optuna's way
            set_user_attrs(trial, {"early": x}, with_finished_state=True)
            trial.set_user_attr("after", True)
        set_user_attrs(trial, {"held": x}, with_finished_state=True)
        return x

    study.optimize(objective, n_trials=2)
    trials = optuna.load_study(study_name=study.study_name, storage=storage).trials
    assert [(t.number, t.state) for t in trials] == [(0, State.COMPLETE), (1, State.COMPLETE)]
    assert all("x" in t.params for t in trials)
    assert [t.user_attrs for t in trials] == [
        {"held": trials[0].params["x"]},
        {"early": trials[1].params["x"], "after": True, "held": trials[1].params["x"]}]


@pytest.mark.parametrize("url", ["sqlite", "postgresql"], indirect=True)
def test_trial_numbers_are_looked_up_through_ecotunes_index(url: str) -> None:
    """ecotune's create_study adds the (study_id, number) index once, the look-up by
    number uses it on SQLite (its query plan names it), and plain Optuna opens and
    extends the study."""
    from sqlalchemy import inspect

    from ecotune import create_study
    from ecotune.storage import TRIAL_NUMBER_INDEX

    study = create_study("ix", storage=url, objectives=["accuracy"])
    storage = study._storage._backend
    for x in (1.0, 2.0, 3.0):
        study.add_trial(optuna.trial.create_trial(value=x))
    create_study("ix", storage=url, objectives=["accuracy"])  # a second worker: nothing new

    def indexes() -> list[dict]:
        return [ix for ix in inspect(storage.engine).get_indexes("trials")
                if ix["name"] == TRIAL_NUMBER_INDEX]

    assert [ix["column_names"] for ix in indexes()] == [["study_id", "number"]]
    if url.startswith("sqlite"):
        with storage.engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT trial_id FROM trials WHERE number = 2 AND "
                "study_id = 1 LIMIT 2").all()
        assert TRIAL_NUMBER_INDEX in " ".join(str(row) for row in plan)
    assert storage.get_trial_id_from_study_id_trial_number(study._study_id, 2) == \
        study.trials[2]._trial_id
    plain = optuna.load_study(study_name="ix", storage=optuna.storages.RDBStorage(url))
    plain.add_trial(optuna.trial.create_trial(value=4.0))
    assert [t.number for t in plain.trials] == [0, 1, 2, 3]


@pytest.mark.parametrize("url", ["sqlite", "postgresql"], indirect=True)
def test_a_system_attribute_is_written_without_optunas_orm(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain write is the one that runs: with Optuna's own write broken, a constraint
    still reaches the database."""
    storage = PerTrialRDBStorage(url)
    study = optuna.create_study(study_name="sys", storage=storage)
    trial = study.ask()

    def orm_write(*_args, **_kwargs):
        raise AssertionError("Optuna's ORM write ran")

    monkeypatch.setattr(optuna.storages.RDBStorage, "set_trial_system_attr", orm_write)
    trial.set_constraint("energy", -1.5)
    study.tell(trial, 1.0)
    stored = optuna.load_study(study_name="sys", storage=url).trials[0]
    assert stored.system_attrs["constraints:energy"] == -1.5


@pytest.mark.parametrize("url", ["sqlite", "postgresql"], indirect=True)
def test_attributes_held_for_the_end_go_with_the_finished_state(url: str) -> None:
    """``set_user_attrs(..., with_finished_state=True)``: the database gets the attributes
    in the one transaction of ``tell``; this process reads them at once; any other write
    to the trial writes them first, so that the later value of a name wins."""
    storage = PerTrialRDBStorage(url)
    study = optuna.create_study(study_name="held", storage=storage)
    other = optuna.storages.RDBStorage(url)  # another process's view

    def stored(trial: optuna.Trial) -> dict:
        return other.get_trial(trial._trial_id).user_attrs

    commits, wrote = [], []  # transactions that wrote

    @event.listens_for(storage.engine, "before_cursor_execute")
    def statement(_conn, _cursor, sql: str, *_args) -> None:
        wrote.append(sql.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE"))

    @event.listens_for(storage.engine, "commit")
    def commit(_conn) -> None:
        commits.extend([1] if any(wrote) else [])
        wrote.clear()

    trial = study.ask()
    set_user_attrs(trial, {"curve": (1, 2), "energy_j": 1.5}, with_finished_state=True)
    assert stored(trial) == {}
    assert storage.get_trial(trial._trial_id).user_attrs == {"curve": [1, 2], "energy_j": 1.5}
    assert trial.user_attrs == {"curve": (1, 2), "energy_j": 1.5}
    commits.clear()
    study.tell(trial, 1.0)
    assert len(commits) == 1
    told = other.get_trial(trial._trial_id)
    assert (told.state, told.values, told.user_attrs) == (
        State.COMPLETE, [1.0], {"curve": [1, 2], "energy_j": 1.5})

    trial = study.ask()
    set_user_attrs(trial, {"a": 1, "b": 1}, with_finished_state=True)
    trial.set_user_attr("a", 2)
    assert stored(trial) == {"a": 2, "b": 1}
    set_user_attrs(trial, {"c": 1, "d": 1}, with_finished_state=True)
    commits.clear()
    set_user_attrs(trial, {"d": 4})  # a batch at once: with what the trial holds
    assert len(commits) == 1 and stored(trial) == {"a": 2, "b": 1, "c": 1, "d": 4}
    set_user_attrs(trial, {"e": 5}, with_finished_state=True)
    trial.suggest_float("x", 0, 1)
    assert stored(trial)["e"] == 5
    set_user_attrs(trial, {"f": 6}, with_finished_state=True)
    study.tell(trial, state=State.FAIL)
    assert stored(trial) == {"a": 2, "b": 1, "c": 1, "d": 4, "e": 5, "f": 6}
    assert storage.get_trial(trial._trial_id).state == State.FAIL
