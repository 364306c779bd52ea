"""Per-trial bookkeeping that reads only what changed (trial count, study energy, early
stopper's front) equals reading the whole study, with another worker adding trials."""

from __future__ import annotations

import gc
import math
import random
import types
import weakref
from pathlib import Path

import numpy as np
import optuna
import pytest

from ecotune.execution._workers import count_trials
from ecotune.pareto import non_dominated
from ecotune.rules import _budgets as budgets
from ecotune.rules import _early_stopping as early_stopping
from ecotune.rules._budgets import StudyEnergyBudget, study_energy_j
from ecotune.rules._early_stopping import EnergyAwareStopper
from ecotune.storage._open import open_storage

State = optuna.trial.TrialState


def _studies(storage) -> tuple[optuna.Study, optuna.Study]:
    """The study as this worker opened it, and the same study opened by another worker
    (a storage object of its own, except in memory)."""
    study = optuna.create_study(study_name="b", storage=open_storage(storage),
                                directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "energy_j"])
    return study, optuna.load_study(study_name="b", storage=open_storage(storage))


def _step(other: optuna.Study, rng: random.Random, running: list[optuna.Trial]) -> None:
    """One random thing another worker does: start, finish, fail or prune a trial."""
    action = rng.random()
    if action < 0.3 or not running:
        trial = other.ask()
        if rng.random() < 0.5:  # energy recorded before the trial ends
            trial.set_user_attr("energy_j", rng.uniform(0.5, 3.0))
        running.append(trial)
        return
    trial = running.pop(rng.randrange(len(running)))
    trial.set_user_attr("energy_j", rng.uniform(0.5, 3.0))
    if action < 0.75:
        if rng.random() < 0.3:
            trial.set_constraint("trial_energy_j", rng.choice([1.0, -1.0]))
        other.tell(trial, [rng.randint(0, 10) / 10, rng.randint(1, 10)])
    else:
        other.tell(trial, state=State.FAIL if action < 0.9 else State.PRUNED)


def _brute_force_energy_j(study: optuna.Study) -> float:
    return math.fsum(t.user_attrs.get("energy_j", 0.0) for t in study.get_trials())


def _brute_force_front(study: optuna.Study) -> set[tuple[float, float]]:
    points = np.array([t.values for t in study.get_trials(states=(State.COMPLETE,))
                       if all(c <= 0 for c in t.constraints.values())]).reshape(-1, 2)
    return {tuple(p) for p in points[non_dominated(points, [True, False])].tolist()}


@pytest.mark.parametrize("storage", ["sqlite:///b.db", "journal:///b.log", None])
def test_incremental_bookkeeping_equals_reading_everything(storage, tmp_path: Path,
                                                           monkeypatch) -> None:
    if storage is None:
        storage = optuna.storages.InMemoryStorage()
    study, other = _studies(storage)
    rng = random.Random(0)
    running: list[optuna.Trial] = []
    budget = StudyEnergyBudget(1e9)
    stopper = EnergyAwareStopper(study, planned_epochs=5)
    for step in range(80):
        _step(other, rng, running)
        if step % 3:
            continue  # checks come now and then, several trials apart
        assert count_trials(study) == len(other.get_trials())
        assert budget.spent_j(study) == pytest.approx(_brute_force_energy_j(other))
        assert study_energy_j(study) == budget.spent_j(study)  # one sum per study object
        # Each trial's stopper: they share the front kept for this study object.
        front = EnergyAwareStopper(study, planned_epochs=5).front()
        assert {tuple(p) for p in front.tolist()} == _brute_force_front(other)
        # One stopper checks again after FRONT_REFRESH_S (here 0 s): it sees new trials.
        with monkeypatch.context() as patch:
            patch.setattr(early_stopping, "FRONT_REFRESH_S", 0.0)
            assert {tuple(p) for p in stopper.front().tolist()} == _brute_force_front(other)
    assert sum(t.state == State.COMPLETE for t in other.trials) > 10


def test_a_stopper_reads_the_front_at_most_every_refresh_period(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On a patched clock: the front is read at the first check, kept until
    FRONT_REFRESH_S (1 s) has passed, read again at exactly 1 s."""
    now_s = [100.0]
    monkeypatch.setattr(early_stopping, "time", types.SimpleNamespace(monotonic=lambda: now_s[0]))
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "energy_j"])
    stopper = EnergyAwareStopper(study, planned_epochs=5)
    assert len(stopper.front()) == 0
    study.add_trial(optuna.trial.create_trial(values=[0.9, 1.0]))
    now_s[0] += 0.999
    assert len(stopper.front()) == 0  # within FRONT_REFRESH_S of its first read
    assert EnergyAwareStopper(study, planned_epochs=5).front().tolist() == [[0.9, 1.0]]
    now_s[0] += 0.001  # 1 s after the first read
    assert stopper.front().tolist() == [[0.9, 1.0]]
    study.add_trial(optuna.trial.create_trial(values=[0.95, 2.0]))
    now_s[0] += 0.5
    assert stopper.front().tolist() == [[0.9, 1.0]]  # 0.5 s after the second read


def test_bookkeeping_on_postgresql_with_two_study_objects(postgres_url: str) -> None:
    study, other = _studies(postgres_url)
    rng = random.Random(1)
    running: list[optuna.Trial] = []
    budget = StudyEnergyBudget(1e9)
    for _ in range(30):
        _step(other, rng, running)
        assert count_trials(study) == len(other.get_trials())
        assert budget.spent_j(study) == pytest.approx(_brute_force_energy_j(other))


def test_the_study_energy_sum_does_not_keep_a_study_alive() -> None:
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={"energy_j": 2.0}))
    assert study_energy_j(study) == 2.0 and study in budgets._SPENT
    alive = weakref.ref(study)
    del study
    gc.collect()
    assert alive() is None  # and its entry left the table with it


def test_the_kept_front_and_energy_sum_do_not_keep_a_study_alive() -> None:
    """Both per-study caches hold the study weakly: a study nobody uses is freed."""
    import gc
    import weakref

    from ecotune.rules import study_energy_j, study_front

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[0.5, 2.0], user_attrs={"energy_j": 2.0}))
    assert study_front(study, [0, 1], [True, False]).tolist() == [[0.5, 2.0]]
    assert study_energy_j(study) == 2.0
    ref = weakref.ref(study)
    del study
    gc.collect()
    assert ref() is None


def _commits(storage: optuna.storages.BaseStorage) -> list[int]:
    """A list that grows by one at every transaction that wrote (inserted or updated
    rows) committed on relational storage; reads commit too, and are not counted."""
    from sqlalchemy import event

    commits: list[int] = []
    wrote = [False]
    engine = getattr(storage, "_backend", storage).engine

    def statement(_conn, _cursor, sql: str, *_args) -> None:
        wrote[0] = wrote[0] or sql.lstrip().upper().startswith(("INSERT", "UPDATE"))

    def commit(_conn) -> None:
        if wrote[0]:
            commits.append(1)
        wrote[0] = False

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    return commits


@pytest.mark.parametrize("where", ["sqlite", "postgresql", "memory"])
def test_a_trials_attributes_are_written_in_one_transaction(where: str, tmp_path: Path,
                                                            request) -> None:
    """The measurement window's attributes (meter figures, learning curve, early stopping)
    commit together, and the test evaluation's with its energy: the same rows as one
    write each; on storage without transactions, the public calls."""
    from ecotune import measure
    from ecotune.search import create_study

    url = {"sqlite": f"sqlite:///{tmp_path}/a.db", "memory": None,
           "postgresql": request.getfixturevalue("postgres_url")
           if where == "postgresql" else None}[where]
    storage = open_storage(url) if url else optuna.storages.InMemoryStorage()
    study = create_study("a", storage=storage, early_stopping={"enabled": True})
    trial = study.ask()
    commits = _commits(storage) if url else []
    with measure(trial, meter="cputime", epochs=3) as m:
        for epoch in (1, 2, 3):
            m.report(epoch, 0.5 + 0.1 * epoch)
    window_commits = len(commits)
    with m.evaluation() as attrs:
        attrs["test_accuracy"] = 0.75
    evaluation_commits = len(commits) - window_commits
    if url:
        assert (window_commits, evaluation_commits) == (1, 1)
    stored = optuna.load_study(study_name="a", storage=storage).trials[0].user_attrs
    assert stored["energy_meter"] == "cputime"
    assert [p["epoch"] for p in stored["training"]["learning_curve"]] == [1, 2, 3]
    assert stored["early_stopping"]["planned_epochs"] == 3
    assert (stored["test_accuracy"], stored["evaluation_energy_j"]) == (
        0.75, m.evaluation_energy_j)
    assert trial.user_attrs == stored  # the trial's own view, as after set_user_attr
    from ecotune.storage import set_user_attrs

    set_user_attrs(trial, {"energy_meter": "again", "new": [1, 2]})  # replaces, adds
    assert {k: v for k, v in study.trials[0].user_attrs.items()
            if k in ("energy_meter", "new")} == {"energy_meter": "again", "new": [1, 2]}
    study.tell(trial, [0.8, 1.0])
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_user_attrs(trial, {"late": 1})  # as Optuna's own write: nothing stored
    assert "late" not in study.trials[0].user_attrs


def test_the_redacted_view_redacts_a_finished_trial_once_and_follows_running_ones() -> None:
    from ecotune.storage import RedactedStorage

    inner = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=inner, study_name="r")
    view = optuna.load_study(study_name="r", storage=RedactedStorage(inner))
    done = study.ask()
    done.set_user_attr("fail_reason", "postgresql://ann:pw@db/x refused")
    study.tell(done, 1.0)
    running = study.ask()
    first = view.get_trials(deepcopy=False)
    assert first[0].user_attrs["fail_reason"] == "postgresql://ann:***@db/x refused"
    running.set_user_attr("note", "sqlite:///x.db")
    again = view.get_trials(deepcopy=False)
    assert again[0] is first[0]  # the finished trial: redacted once, kept
    assert again[1].user_attrs == {"note": "sqlite:///x.db"}  # the running one: re-read
    copied = view.get_trials(deepcopy=True)[0]
    assert copied is not first[0] and copied.user_attrs == first[0].user_attrs
