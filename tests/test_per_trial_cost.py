"""What one trial costs in storage round trips, pinned; and the caches and shortcuts that
keep it there (stored rules and metric names per study object, the trial Optuna just
created, the first heartbeat written with the trial) hold only while they must."""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import optuna
import pytest
from sqlalchemy import event, text

from ecotune import names
from ecotune.execution import count_trials, run_worker
from ecotune.rules import store_rules, stored_rules, study_metric_names
from ecotune.search import BuiltinObjective, create_study, measure, prepare
from ecotune.spec import load_rules
from ecotune.storage import PerTrialRDBStorage, heartbeat_follows, open_storage


class _RoundTrips:
    """Statements that read and transactions that wrote, on a relational storage."""

    def __init__(self, storage: optuna.storages.BaseStorage) -> None:
        self.reads = self.writes = 0
        self.on = False
        self._wrote = False
        engine = getattr(storage, "_backend", storage).engine
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, _conn, _cursor, sql: str, *_args) -> None:
        if not self.on:
            return
        verb = sql.lstrip()[:6].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):
            self._wrote = True
        elif verb == "SELECT":
            self.reads += 1

    def _commit(self, _conn) -> None:
        if self.on and self._wrote:
            self.writes += 1
        self._wrote = False

    def count(self, work) -> tuple[int, int]:
        """(statements that read, transactions that wrote) while ``work()`` runs."""
        self.reads = self.writes = 0
        self.on = True
        try:
            work()
        finally:
            self.on = False
        return self.reads, self.writes


def _spec(tmp_path: Path, test_evaluation: str = "all") -> dict:
    return {"study": {"name": "cost", "storage": f"sqlite:///{tmp_path}/cost.db",
                      "sampler": "random", "seed": 0},
            "model": {"name": "mlp"},
            "training": {"epochs": 2, "test_evaluation": test_evaluation},
            "energy": {"meter": "cputime"},
            "search_space": {"lr": {"type": "categorical", "choices": [0.01, 0.02]}}}


def test_a_built_in_trial_costs_a_pinned_number_of_storage_round_trips(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial of `ecotune run` (one worker, trials one after another) on SQLite: three
    transactions that write (the trial with its first heartbeat, its parameter, its state
    and values with the attributes: the training window's, the test evaluation's and the
    inference estimates) and a fixed number of reads, whatever the study holds. A change
    that adds a round trip per trial fails here: if it is worth it, pin the new count."""
    monkeypatch.setenv("ECOTUNE_HEARTBEAT_S", "3600")  # no periodic beat within the test
    monkeypatch.setenv("ECOTUNE_GRACE_S", "7200")
    spec, study = prepare(_spec(tmp_path))
    objective = BuiltinObjective(spec)
    objective.warm_up()
    trips = _RoundTrips(study._storage)

    def trials(n: int):
        return lambda: run_worker(spec, study, count_trials(study) + n, objective)

    trials(2)()  # the process's first look at the study, the rules, the metric names
    # At INFO Optuna's line for each finished trial reads the metric names (2 more reads).
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        one = trips.count(trials(1))
        three = trips.count(trials(3))
    finally:
        optuna.logging.set_verbosity(verbosity)
    per_trial = ((three[0] - one[0]) / 2, (three[1] - one[1]) / 2)
    # Before these savings: (42, 7); (24, 5) before the read before `tell` was served from
    # the running trial's copy and Optuna's stale-trial look became the worker's own;
    # (16, 5) before the state and values were written as plain SQL (one upsert of the
    # values where Optuna's ORM looks for each objective's row first: 2 reads fewer);
    # (14, 5) before the training window's attributes waited for the evaluation's write;
    # (13, 4) before the evaluation's write went in the finished state's transaction;
    # (12, 3) before the sync after `tell` read the trial just told from its copy (its
    # five child tables unread).
    assert per_trial == (7, 3)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 6
    last = study.trials[-1].user_attrs
    # Nothing a trial records is lost to the folded writes.
    for key in (names.ATTR_ENERGY, names.ATTR_TRAINING, names.ATTR_INFERENCE,
                names.ATTR_TEST_ACCURACY, names.ATTR_EVALUATION_ENERGY):
        assert key in last
    with study._storage._backend.engine.connect() as conn:
        beats = conn.execute(text("SELECT count(*) FROM trial_heartbeats")).scalar()
    assert beats == 6  # every trial's first heartbeat, written as it was created


def test_a_trial_writes_nothing_per_epoch(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The learning curve is one attribute, written once after training: a trial of 6
    epochs reads and writes storage as often as one of 2 (no intermediate value or
    attribute per epoch; only successive halving writes, at its rung epochs)."""
    monkeypatch.setenv("ECOTUNE_HEARTBEAT_S", "3600")  # no periodic beat within the test
    monkeypatch.setenv("ECOTUNE_GRACE_S", "7200")
    # At INFO Optuna's line for each finished trial reads the metric names.
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        counts = _counts_by_epochs(tmp_path, (2, 6))
    finally:
        optuna.logging.set_verbosity(verbosity)
    assert counts[6] == counts[2]
    assert counts[2][1] == 2 * 3  # three transactions that write, a trial


def _counts_by_epochs(tmp_path: Path, epoch_counts: tuple[int, ...]) -> dict:
    """(statements that read, transactions that wrote) of two more trials of a study of
    each epoch count, after its first look at the study."""
    counts = {}
    for epochs in epoch_counts:
        spec = _spec(tmp_path)
        spec["study"]["name"] = f"cost-{epochs}"
        spec["training"]["epochs"] = epochs
        spec, study = prepare(spec)
        objective = BuiltinObjective(spec)
        objective.warm_up()
        trips = _RoundTrips(study._storage)
        run_worker(spec, study, 2, objective)  # the process's first look at the study
        counts[epochs] = trips.count(functools.partial(
            lambda spec, study, objective: run_worker(spec, study, count_trials(study) + 2,
                                                      objective), spec, study, objective))
        curve = study.trials[-1].user_attrs[names.ATTR_TRAINING]["learning_curve"]
        assert [point["epoch"] for point in curve] == list(range(1, epochs + 1))
    return counts


@pytest.mark.parametrize("fails_in", ["estimates", "evaluation"])
def test_the_training_windows_attributes_survive_an_error_after_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails_in: str) -> None:
    """The training window's attributes wait for the test evaluation's write: an error in
    the inference estimates or in the evaluation still stores them (energy spent, the
    learning curve) on the failed trial, beside its fail reason."""
    import ecotune.energy.hardware
    import ecotune.search._objective

    def broken(*_args, **_kwargs):
        raise RuntimeError(f"broken {fails_in}")

    if fails_in == "estimates":
        monkeypatch.setattr(ecotune.energy.hardware, "inference_estimates", broken)
    else:
        monkeypatch.setattr(ecotune.search._objective, "evaluate_test", broken)
    spec, study = prepare(_spec(tmp_path))
    with pytest.raises(RuntimeError, match=f"broken {fails_in}"):
        BuiltinObjective(spec)(study.ask())
    attrs = study.trials[-1].user_attrs
    assert attrs[names.ATTR_ENERGY] > 0
    assert len(attrs[names.ATTR_TRAINING]["learning_curve"]) == 2
    assert (names.ATTR_INFERENCE in attrs) == (fails_in == "evaluation")
    if fails_in == "evaluation":  # the evaluation's own window is stored too
        assert names.ATTR_EVALUATION_ENERGY in attrs
        assert f"broken {fails_in}" in attrs[names.ATTR_FAIL_REASON]


@pytest.mark.parametrize("test_evaluation", ["none", "front"])
def test_the_inference_estimates_are_stored_without_a_test_evaluation(
        tmp_path: Path, test_evaluation: str) -> None:
    spec, study = prepare(_spec(tmp_path, test_evaluation))
    run_worker(spec, study, 2, BuiltinObjective(spec))
    for trial in study.trials:
        assert trial.user_attrs[names.ATTR_INFERENCE]["asic_pj"] > 0
    evaluated = [names.ATTR_TEST_ACCURACY in t.user_attrs for t in study.trials]
    # "front": the first trial is on the (empty) front, so it is evaluated.
    assert evaluated[0] == (test_evaluation == "front") and (
        test_evaluation == "front" or not any(evaluated))


def _counting_user_attr_reads(study: optuna.Study) -> list[int]:
    reads: list[int] = []
    storage = study._storage
    inner = storage.get_study_user_attrs

    def counted(study_id: int):
        reads.append(study_id)
        return inner(study_id)

    storage.get_study_user_attrs = counted
    return reads


def test_stored_rules_are_read_once_per_study_object_and_follow_store_rules() -> None:
    study = create_study("r", storage=None, budgets={"trial_energy_j": 50.0})
    reads = _counting_user_attr_reads(study)
    for _ in range(3):
        with measure(study.ask(), meter="cputime", epochs=1) as m:
            m.report(1, 0.5)
        assert m.rules.budgets.trial_energy_j == 50.0
    assert len(reads) == 0  # create_study stored them: kept from there
    # Rules stored again on the same object: the next window applies the new ones.
    store_rules(study, load_rules({"budgets": {"trial_energy_j": 7.0}}))
    with measure(study.ask(), meter="cputime", epochs=1) as m:
        m.report(1, 0.5)
    assert m.rules.budgets.trial_energy_j == 7.0
    # Another study object on the same storage reads them once, then keeps them.
    other = optuna.load_study(study_name="r", storage=study._storage)
    other_reads = _counting_user_attr_reads(other)
    assert [stored_rules(other).budgets.trial_energy_j for _ in range(3)] == [7.0] * 3
    assert len(other_reads) == 1


def test_metric_names_are_read_again_until_they_are_set() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    assert study_metric_names(study) is None
    study.set_metric_names(["accuracy", "energy_j"])
    assert study_metric_names(study) == ["accuracy", "energy_j"]
    names_now = study_metric_names(study)
    names_now.append("changed by a caller")  # a copy: the kept names stay
    assert study_metric_names(study) == ["accuracy", "energy_j"]


def _storage(tmp_path: Path) -> PerTrialRDBStorage:
    storage = open_storage(f"sqlite:///{tmp_path}/p.db")
    assert isinstance(storage, PerTrialRDBStorage)
    return storage


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() on purpose
def test_the_sync_after_tell_reads_the_told_trial_from_its_copy(tmp_path: Path) -> None:
    """The trial cache's sync after a tell finds the trial just told: its child tables
    are not read (two statements: the study, the trials table), and the trial is what
    a read of the database gives, its attributes in the stored order."""
    from ecotune.storage import set_user_attrs

    storage = _storage(tmp_path)
    study = optuna.create_study(storage=storage, study_name="t",
                                directions=["maximize", "minimize"])
    study.tell(study.ask(), [0.0, 0.0])
    assert len(study.trials) == 1  # the cache's first read
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("pair", (1, 2))
    set_user_attrs(trial, {"energy_j": 1.5, "curve": [{"epoch": 1}]})
    trial.set_user_attr("pair", "replaced")  # keeps its place
    trial.storage.set_trial_system_attr(trial._trial_id, "s", {"k": (3.5,)})
    storage.set_trial_intermediate_value(trial._trial_id, 1, 0.5)
    set_user_attrs(trial, {"evaluation_energy_j": 0.25}, with_finished_state=True)
    study.tell(trial, [float("inf"), 2.0])
    selects: list[str] = []
    listener = lambda _c, _cur, sql, *_a: selects.append(sql)  # noqa: E731
    event.listen(storage.engine, "before_cursor_execute", listener)
    try:
        synced = study.trials[1]
    finally:
        event.remove(storage.engine, "before_cursor_execute", listener)
    assert len(selects) == 2, selects
    stored = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/p.db").get_trial(
        trial._trial_id)
    for name in ("number", "state", "values", "params", "distributions", "system_attrs",
                 "intermediate_values", "datetime_start", "datetime_complete"):
        assert getattr(synced, name) == getattr(stored, name), name
    assert synced.user_attrs == stored.user_attrs
    # In the order of the rows, as a read of the tables gives them (Optuna's own read
    # orders them its own way).
    read = optuna.load_study(study_name="t", storage=_storage(tmp_path)).trials[1]
    assert list(synced.user_attrs.items()) == list(read.user_attrs.items())
    assert list(read.user_attrs) == ["pair", "energy_j", "curve", "evaluation_energy_j"]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() on purpose
def test_the_look_for_waiting_trials_reads_only_the_unfinished(tmp_path: Path) -> None:
    """TrialCache (what ecotune's studies use) answers a read of unfinished states, the
    look for waiting trials that study.ask makes before every trial, as Optuna's cache
    does, without looking at a finished trial; ecotune.create_study uses it."""
    from optuna.storages import _CachedStorage

    from ecotune.storage import TrialCache

    study = create_study("w", storage=f"sqlite:///{tmp_path}/p.db", objectives=["accuracy"])
    assert isinstance(study._storage, TrialCache)
    for x in (0.1, 0.2, 0.3):
        study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), x)
    running = study.ask()
    for x in (0.7, 0.8):
        study.enqueue_trial({"x": x})
    plain = _CachedStorage(study._storage._backend)
    sid = study._study_id
    for states in ((optuna.trial.TrialState.WAITING,),
                   (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING),
                   (optuna.trial.TrialState.COMPLETE,), None):
        ours = study._storage.get_all_trials(sid, deepcopy=False, states=states)
        assert [(t.number, t.state) for t in ours] == [
            (t.number, t.state) for t in plain.get_all_trials(sid, states=states)], states

    class NoScan(dict):
        def items(self):
            raise AssertionError("looked at every trial")

        values = items

    cached = study._storage._studies[sid]
    cached.trials = NoScan(cached.trials)
    waiting = study._storage.get_all_trials(sid, states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"]["x"] for t in waiting] == [0.7, 0.8]
    cached.trials = dict(cached.trials)
    assert study.ask().suggest_float("x", 0, 1) == 0.7  # ask runs the enqueued trial first
    assert running.number == 3


def test_the_trial_just_created_is_served_as_the_database_holds_it(tmp_path: Path) -> None:
    storage = _storage(tmp_path)
    study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    trial_id = storage._create_new_trial(study_id)._trial_id
    served = storage.get_trial(trial_id)
    assert served == optuna.storages.RDBStorage.get_trial(storage, trial_id)
    storage.set_trial_user_attr(trial_id, "a", 1)
    assert storage.get_trial(trial_id).user_attrs == {"a": 1}
    # What a read returns is the caller's: changing it, however deep, changes no later read.
    storage.set_trial_user_attr(trial_id, "curve", [{"epoch": 1}])
    read = storage.get_trial(trial_id)
    read.user_attrs["curve"][0]["epoch"] = 99
    read.params["x"] = 1.0
    again = storage.get_trial(trial_id)
    assert again.user_attrs == {"a": 1, "curve": [{"epoch": 1}]} and again.params == {}


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() on purpose
def test_a_running_trial_is_served_with_every_write_as_the_database_holds_it(
        tmp_path: Path) -> None:
    """Parameters, attributes (one at a time and batched: tuples come back as lists),
    intermediate values: the copy a running trial's reads are served from equals what
    the database gives, with no statement; once the state is written, the database."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from ecotune.storage import set_user_attrs

    storage = _storage(tmp_path)
    study = optuna.create_study(storage=storage, study_name="w")
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.suggest_categorical("c", ["a", "b"])
    trial.set_user_attr("pair", (1, 2))
    trial.storage.set_trial_system_attr(trial._trial_id, "s", {"k": (3.5,)})
    set_user_attrs(trial, {"batched": {"curve": [1.0, 2.0]}, "pair": "replaced"})
    trial.report(0.25, step=0)
    trial.report(float("inf"), step=1)
    trips = _RoundTrips(storage)
    served = [None]
    assert trips.count(lambda: served.__setitem__(0, storage.get_trial(trial._trial_id))) \
        == (0, 0)
    stored = optuna.storages.RDBStorage.get_trial(storage, trial._trial_id)
    assert served[0] == stored
    assert served[0].user_attrs == {"pair": "replaced", "batched": {"curve": [1.0, 2.0]}}
    assert served[0].system_attrs == {"s": {"k": [3.5]}}
    assert served[0].distributions == {"x": FloatDistribution(0.0, 1.0),
                                       "c": CategoricalDistribution(["a", "b"])}
    served[0].user_attrs["changed"] = "by a caller"  # a copy: the next read is unchanged
    assert "changed" not in storage.get_trial(trial._trial_id).user_attrs
    study.tell(trial, 1.0)
    assert trips.count(lambda: storage.get_trial(trial._trial_id))[0] > 0
    assert storage.get_trial(trial._trial_id).state == optuna.trial.TrialState.COMPLETE


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() on purpose
def test_a_failed_write_sends_the_running_trial_s_reads_to_the_database(
        tmp_path: Path) -> None:
    storage = _storage(tmp_path)
    study = optuna.create_study(storage=storage, study_name="f")
    trial = study.ask()
    # Another process ends the trial (a worker thought dead): this one's write fails...
    other = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/p.db")
    other.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        trial.set_user_attr("late", 1)
    # ...and its reads see the database's state from then on.
    assert storage.get_trial(trial._trial_id).state == optuna.trial.TrialState.FAIL


def test_a_worker_skips_optuna_s_stale_look_and_fails_dead_trials_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside heartbeat_follows Optuna finds no stale trial; the worker's own check
    (DeadTrialCheck) fails a dead worker's trial, at most once per heartbeat interval."""
    from ecotune.execution._failures import DeadTrialCheck

    monkeypatch.setenv("ECOTUNE_HEARTBEAT_S", "1")
    monkeypatch.setenv("ECOTUNE_GRACE_S", "2")
    storage = _storage(tmp_path)
    study = optuna.create_study(storage=storage, study_name="d")
    with pytest.warns(UserWarning, match="Heartbeat"):
        dead = study.ask()
    storage.record_heartbeat(dead._trial_id)
    with storage.engine.begin() as conn:  # its last beat, a minute ago
        conn.execute(text("UPDATE trial_heartbeats SET heartbeat = "
                          "datetime(heartbeat, '-60 seconds')"))
    assert storage._get_stale_trial_ids(study._study_id) == [dead._trial_id]
    with heartbeat_follows():
        assert storage._get_stale_trial_ids(study._study_id) == []
    DeadTrialCheck._last_look_s[storage] = {study._study_id: time.monotonic()}
    # A storage opened anew (a restarted run's) looks at once; one that looked just now
    # (a new check on it: the next run_worker call) not until an interval has passed.
    reopened = optuna.load_study(study_name="d", storage=_storage(tmp_path))
    check = DeadTrialCheck(study)
    check()
    assert storage.get_trial(dead._trial_id).state == optuna.trial.TrialState.RUNNING
    DeadTrialCheck._last_look_s[storage][study._study_id] -= 1.0  # an interval later
    check()
    assert storage.get_trial(dead._trial_id).state == optuna.trial.TrialState.FAIL
    with storage.engine.begin() as conn:  # as it was: running, its last beat long ago
        conn.execute(text("UPDATE trials SET state = 'RUNNING', datetime_complete = NULL"))
    DeadTrialCheck(reopened)()
    frozen = storage.get_trial(dead._trial_id)
    assert frozen.state == optuna.trial.TrialState.FAIL
    assert "no heartbeat" in frozen.user_attrs[names.ATTR_FAIL_REASON]


def test_a_write_or_another_thread_reads_the_created_trial_from_the_database(
        tmp_path: Path) -> None:
    storage = _storage(tmp_path)
    study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    trial_id = storage._create_new_trial(study_id)._trial_id
    storage.set_trial_user_attr(trial_id, "written", True)
    assert storage.get_trial(trial_id).user_attrs == {"written": True}
    second = storage._create_new_trial(study_id)._trial_id
    optuna.storages.RDBStorage.set_trial_user_attr(storage, second, "behind", 1)
    seen: list = []
    reader = threading.Thread(target=lambda: seen.append(storage.get_trial(second)))
    reader.start()
    reader.join()
    assert seen[0].user_attrs == {"behind": 1}  # not this thread's created copy


def _heartbeats(storage: PerTrialRDBStorage) -> list[tuple[int, str]]:
    with storage.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            text("SELECT trial_id, heartbeat FROM trial_heartbeats ORDER BY trial_id"))]


def test_the_first_heartbeat_is_written_with_the_trial_inside_heartbeat_follows(
        tmp_path: Path) -> None:
    storage = _storage(tmp_path)
    study = optuna.create_study(storage=storage, study_name="h")
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna: ask() outside optimize
        outside = study.ask()
    assert _heartbeats(storage) == []  # as Optuna: no heartbeat thread, no heartbeat
    with heartbeat_follows():
        with pytest.warns(UserWarning, match="Heartbeat"):
            inside = study.ask()
    rows = _heartbeats(storage)
    assert [r[0] for r in rows] == [inside._trial_id]
    trips = _RoundTrips(storage)
    # The thread's first beat: nothing to do. Later beats: Optuna's own (SQLite's clock
    # has whole seconds, so a beat within the same second may update nothing).
    assert trips.count(lambda: storage.record_heartbeat(inside._trial_id)) == (0, 0)
    assert trips.count(lambda: storage.record_heartbeat(inside._trial_id))[0] > 0
    assert trips.count(lambda: storage.record_heartbeat(outside._trial_id))[1] == 1
    assert sorted(r[0] for r in _heartbeats(storage)) == [outside._trial_id, inside._trial_id]


def test_a_worker_without_callbacks_still_stops_at_the_study_energy_budget_in_threads(
        tmp_path: Path) -> None:
    """No callback list (Optuna then reads no finished trial back for it): a stop inside
    a trial, the study energy budget's, still ends every thread's loop."""
    from ecotune.spec import load_spec

    spec = load_spec({"study": {"name": "b", "storage": f"sqlite:///{tmp_path}/b.db",
                                "n_jobs": 2},
                      "budgets": {"study_energy_j": 3.0}})
    study = create_study("b", storage=spec.study.storage, budgets={"study_energy_j": 3.0})

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        with measure(trial, meter="cputime"):
            pass
        trial.set_user_attr(names.ATTR_ENERGY, 1.0)  # 1 J a trial, whatever it measured
        return 0.5, 1.0

    run_worker(spec, study, 50, objective)
    assert study._stop_flag or len(study.trials) < 50
    spent = [t for t in study.trials if names.ATTR_ENERGY in t.user_attrs]
    assert 3 <= len(spent) <= 5  # the budget, overshot by the trials running at most


def test_codecarbon_s_process_models_find_the_same_children_from_proc() -> None:
    """CodeCarbon's CPU and RAM models look up this process's children at every window
    start and stop; they read them from /proc/PID/task/TID/children, and find the same
    processes psutil's scan of the whole machine finds."""
    import subprocess
    import sys

    import psutil

    from ecotune.energy import get_meter
    from ecotune.energy._children import ChildrenFromProc, children_files_available

    pytest.importorskip("codecarbon")
    if not children_files_available():
        pytest.skip("this kernel has no /proc children files")
    meter = get_meter("codecarbon")
    with meter.window():
        pass
    tracker = meter._tracker()
    models = {type(h).__name__: h for h in tracker._hardware}
    assert isinstance(models["CPU"]._process, ChildrenFromProc)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        expected = sorted(p.pid for p in psutil.Process().children(recursive=True))
        assert child.pid in expected
        assert sorted(models["CPU"]._process.children(recursive=True), key=lambda p: p.pid) \
            == sorted(psutil.Process().children(recursive=True), key=lambda p: p.pid)
        assert len(models["RAM"]._get_children_memories()) == len(expected)
    finally:
        child.kill()
        child.wait()


def test_a_trial_that_crashes_mid_training_keeps_its_epochs(tmp_path: Path) -> None:
    """Nothing the trial measured is lost to the folded and plain-SQL writes: a trial
    whose training raises after epoch 3 of 5 is stored failed, with why, its first three
    learning-curve points and the energy it spent. (A process killed outright loses the
    open window's curve: it is written as the window closes, one write per trial.)"""
    spec, study = prepare(_spec(tmp_path))

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        trial.suggest_categorical("lr", [0.01, 0.02])
        with measure(trial, meter="cputime", epochs=5) as m:
            for epoch in range(1, 6):
                if epoch == 4:
                    raise RuntimeError("the data loader died")
                m.report(epoch, 0.1 * epoch)
        return m.accuracy, m.energy_j

    run_worker(spec, study, 1, objective)
    trial = optuna.load_study(study_name="cost", storage=spec.study.storage).trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert "the data loader died" in trial.user_attrs[names.ATTR_FAIL_REASON]
    curve = trial.user_attrs[names.ATTR_TRAINING]["learning_curve"]
    assert [p["epoch"] for p in curve] == [1, 2, 3]
    assert trial.user_attrs[names.ATTR_ENERGY] >= curve[-1]["energy_j"] > 0
