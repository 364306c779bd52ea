"""Several workers on one study: PostgreSQL, SQLite and journal storage, exact trial
counts across workers, the study energy budget across workers."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest

from ecotune.execution._workers import count_trials, run_worker
from ecotune.report import pareto_front
from ecotune.search import prepare
from ecotune.spec import load_spec
from ecotune.storage._open import journal_path, open_storage
from tests.conftest import tiny_spec, tiny_study_toml


def _study(name: str) -> str:
    return tiny_study_toml(name, study=('sampler = "random"', "seed = 3"),
                           training=("epochs = 1", "batch_size = 128"))


def _brute_force_front(study: optuna.Study) -> set[int]:
    """Numbers of the complete trials no other complete trial dominates."""
    signs = [1 if d == optuna.study.StudyDirection.MAXIMIZE else -1 for d in study.directions]
    points = {t.number: [s * v for s, v in zip(signs, t.values)]
              for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))

    return {n for n, p in points.items()
            if not any(dominates(q, p) for m, q in points.items() if m != n)}


@pytest.mark.slow
def test_three_workers_on_postgresql_add_exactly_n_trials(tmp_path: Path, postgres_url: str,
                                                          capsys) -> None:
    """`ecotune run` in-process, its three workers real processes (a real `run --workers`
    process: tests/test_credentials.py)."""
    from ecotune.cli import main

    study_file = tmp_path / "pg.toml"
    study_file.write_text(_study("pg"))
    assert main(["run", str(study_file), "--storage", postgres_url, "--workers", "3",
                 "--n-trials", "30", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "adding 30" in out and "3 workers" in out
    study = optuna.load_study(study_name="pg", storage=postgres_url)
    trials = study.trials
    assert len(trials) == 30
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == list(range(30))  # none counted twice
    assert len({t._trial_id for t in trials}) == 30
    # Workers had seeds 3, 4, 5: they did not all sample the same sequence.
    assert len({t.params["lr"] for t in trials}) == 30
    front = set(pareto_front(study)["trial"])
    assert front == _brute_force_front(study)
    assert not (tmp_path / "ecotune.db").exists()


def _fake_objective(energy_j: float = 1.0):
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("energy_j", energy_j)
        return x, energy_j + x
    return objective


def _threads(n_workers: int, target: int, spec_data: dict) -> None:
    """Run ``n_workers`` workers in threads, each with a study object of its own."""
    prepare(spec_data)  # as `ecotune run` does: create the study before starting workers
    errors: list[BaseException] = []

    def work() -> None:
        try:
            spec, study = prepare(spec_data)
            run_worker(spec, study, target, _fake_objective())
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(n_workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


@pytest.mark.parametrize("storage", ["sqlite:///shared.db", "journal:///shared.log"])
def test_workers_share_one_target(storage: str, tmp_path: Path) -> None:
    data = {"study": {"name": "s", "storage": storage, "sampler": "random"}}
    _threads(4, 13, data)
    _, study = prepare(data)
    assert count_trials(study) == 13
    assert sorted(t.number for t in study.trials) == list(range(13))
    # A second run adds to what is stored: target = 13 stored + 5.
    _threads(2, count_trials(study) + 5, data)
    assert count_trials(study) == 18
    assert not list(tmp_path.glob("*.ecotune-claim"))  # lock files are removed


def test_study_energy_budget_holds_across_workers(tmp_path: Path) -> None:
    # Each fake trial records 1 J; the budget of 5 J stops new trials across both workers.
    data = {"study": {"name": "b", "storage": "sqlite:///b.db", "sampler": "random"},
            "budgets": {"study_energy_j": 5.0}}
    _threads(2, 100, data)
    _, study = prepare(data)
    assert 5 <= count_trials(study) <= 5 + 1  # at most one trial per other worker in flight


@pytest.mark.slow
def test_workers_then_total_trials_on_sqlite(tmp_path: Path, capsys) -> None:
    from ecotune.cli import main

    study_file = tmp_path / "s.toml"
    study_file.write_text(_study("lite"))
    assert main(["run", str(study_file), "--workers", "2", "--n-trials", "3",
                 "--no-report"]) == 0
    assert "SQLite" in capsys.readouterr().out
    assert main(["run", str(study_file), "--total-trials", "4", "--no-report"]) == 0
    assert "3 trial(s) stored, adding 1" in capsys.readouterr().out
    study = optuna.load_study(study_name="lite", storage="sqlite:///ecotune.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4


def test_journal_storage_url(tmp_path: Path) -> None:
    assert journal_path("journal:///x.log") == Path("x.log")
    assert isinstance(open_storage("journal:///x.log"), optuna.storages.JournalStorage)
    with pytest.raises(ValueError, match="no such directory"):
        open_storage("journal:///no/such/dir/x.log")
    assert not (tmp_path / "no").exists()


def test_load_spec_accepts_journal_storage() -> None:
    spec = load_spec({"study": {"name": "j", "storage": "journal:////shared/j.log"}})
    assert spec.study.storage == "journal:////shared/j.log"


def test_report_reads_journal_storage(tmp_path: Path, capsys) -> None:
    from ecotune.cli import main

    data = {"study": {"name": "j", "storage": "journal:///j.log", "sampler": "random"}}
    _threads(1, 2, data)
    assert main(["report", "--storage", "journal:///j.log", "--no-png", "--out", "r"]) == 0
    assert (tmp_path / "r" / "front.json").is_file()
    assert main(["report", "--storage", "journal:///missing.log"]) == 2
    assert not (tmp_path / "missing.log").exists()


def _worker_spec_data(tmp_path: Path) -> dict:
    spec = load_spec({**tiny_spec("seeds", seed=3, storage=f"sqlite:///{tmp_path / 's.db'}"),
                      "energy": {"meter": "cputime"}})
    return spec.model_dump(mode="json")  # what start_local_workers sends each worker


def test_a_worker_changes_only_the_sampler_seed_and_stores_nothing(tmp_path: Path,
                                                                   monkeypatch) -> None:
    from ecotune.names import STUDY_ATTR_SPEC
    from ecotune.search import _runner

    spec_data = _worker_spec_data(tmp_path)
    parent, study = prepare(spec_data)
    study.set_user_attr(STUDY_ATTR_SPEC, "the parent's")

    def attrs(study: optuna.Study) -> tuple[dict, dict]:
        return (study.user_attrs,
                study._storage.get_study_system_attrs(study._study_id))

    stored = attrs(study)
    seen = []
    monkeypatch.setattr(_runner, "_builtin_objective", lambda spec: None)
    monkeypatch.setattr(_runner, "run_worker", lambda spec, study, target, objective:
                        seen.append((spec, study.sampler)))
    for index in (1, 2):
        _runner._worker_main(spec_data, index, 10)
    assert [spec for spec, _ in seen] == [parent, parent]  # the training seed among it
    assert parent.training.seed == 3
    samples = [sampler.sample_independent(study, None, "x", optuna.distributions
                                          .FloatDistribution(0, 1)) for _, sampler in seen]
    expected = [optuna.samplers.RandomSampler(seed=3 + i).sample_independent(
        study, None, "x", optuna.distributions.FloatDistribution(0, 1)) for i in (1, 2)]
    assert samples == expected
    reloaded = optuna.load_study(study_name="seeds", storage=parent.study.storage)
    assert attrs(reloaded) == stored


def test_a_configuration_trains_the_same_on_any_worker(tmp_path: Path, monkeypatch) -> None:
    """Worker 1 trains an enqueued configuration as worker 0 does: same seed, same
    accuracy (only the sampler's seed depends on the worker)."""
    from ecotune.search import BuiltinObjective, _objective
    from ecotune.search._study import open_study

    spec_data = _worker_spec_data(tmp_path)
    prepare(spec_data)
    seeds = []
    train = _objective.train
    monkeypatch.setattr(_objective, "train", lambda *a, seed, **k: seeds.append(seed) or
                        train(*a, seed=seed, **k))
    accuracies = []
    for index in (0, 1):
        spec = load_spec(spec_data)
        study = open_study(spec, index)
        study.enqueue_trial({"lr": 0.01, "width": 0.5})
        study.optimize(BuiltinObjective(spec), n_trials=1)
        accuracies.append(study.trials[-1].values[0])
    assert seeds == [3, 3]
    assert accuracies[0] == accuracies[1]
