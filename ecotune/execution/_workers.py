"""Workers: run one study from several processes, on one machine or many, with a trial
count and an energy budget that hold across all of them.

The calling sequence of one worker (:func:`run_worker`):

1. fail dead trials (relational storage: trials whose worker stopped sending heartbeats,
   or died before its first one; :mod:`ecotune.execution._failures`): at start, then
   before a trial once a heartbeat interval has passed since the last look;
2. take the study's *claim lock* (:func:`claim_lock`: a PostgreSQL advisory lock, a lock
   file beside a SQLite database or journal file, or a thread lock in memory);
3. under the lock, stop if the study's energy budget is spent or the study already holds
   ``target_trials`` trials (in any state, running ones included); otherwise create the
   next trial (``study.optimize(..., n_trials=1)`` asks for it);
4. release the lock as soon as the trial exists, then train;
5. repeat.

With ``[study] n_jobs = k`` (``ecotune run --jobs k``) a worker runs that loop in ``k``
threads of its process, trials at once sharing its meters (each trial is charged its share
of the energy read while it ran, :mod:`ecotune.energy`); the claim lock is then taken by
one thread of the process at a time, then across processes as above. Each thread knows
its index (:func:`job_index`), by which the built-in trainer gives each of them a GPU of
its own where several are visible (:func:`ecotune.devices.job_device`).

Because a trial is counted and created under one lock, N workers together add exactly
``target_trials - trials stored`` trials: never one per worker too many. A run of
``n_trials`` computes its target once at start (trials stored + ``n_trials``) and hands it
to every worker it starts.

Failures inside a trial (an exception, a non-finite objective value, ``MemoryError`` or a
torch out-of-memory error) end that trial as failed with ``fail_reason`` set; the worker
goes on. Ctrl-C (``KeyboardInterrupt``) fails the running trial with the reason
``interrupted`` and is raised again, so no trial is left running.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import math
import multiprocessing
import os
import signal
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna

from ecotune.devices import worker_gpu
from ecotune.execution._failures import INTERRUPTED_REASON, DeadTrialCheck, record_failure
from ecotune.names import ATTR_FAIL_REASON
from ecotune.rules import StudyEnergyBudget
from ecotune.spec import StudySpec
from ecotune.storage import count_from, heartbeat_follows, journal_path, scrub

__all__ = ["run_worker", "claim_lock", "count_trials", "start_local_workers", "worker_entry",
           "job_index", "INTERRUPTED_REASON"]

Callback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]

_job = threading.local()


def job_index() -> int | None:
    """The index (0 to n_jobs - 1) of the trial thread this runs in, under ``[study]
    n_jobs`` above 1; None otherwise (one trial at a time, or a thread of one's own).

    Example:
        >>> job_index() is None
        True
    """
    return getattr(_job, "index", None)


#: The trial count each study object last saw: trials are never deleted, so it is a lower
#: bound, and the next count only probes the numbers after it.
_KNOWN_COUNTS: weakref.WeakKeyDictionary[optuna.Study, int] = weakref.WeakKeyDictionary()


def count_trials(study: optuna.Study) -> int:
    """Trials the study holds in any state (running and waiting ones included).

    The first count in a process reads the study once; later ones read only the trials
    created since (:func:`~ecotune.storage._trial_cursor.count_from`), so the count under
    the claim lock costs the same at 10,000 stored trials as at 100.
    """
    known = _KNOWN_COUNTS.get(study)
    if known is None:
        known = len(study.get_trials(deepcopy=False))
    _KNOWN_COUNTS[study] = count = count_from(study, known)
    return count


class _FileLock:
    """An exclusive lock file made with ``open(O_CREAT | O_EXCL)``: works on NFS too."""

    def __init__(self, path: Path) -> None:
        from optuna.storages.journal import JournalFileOpenLock

        # The lock is held for milliseconds; a file older than 30 s is a dead worker's.
        self._lock = JournalFileOpenLock(str(path), grace_period=30)

    def acquire(self) -> None:
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()


class _PostgresAdvisoryLock:
    """A session-level PostgreSQL advisory lock on one connection of its own."""

    def __init__(self, url: str, key: int) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        self._text = text
        self._key = key
        engine = create_engine(url, poolclass=NullPool)
        self._conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def acquire(self) -> None:
        self._conn.execute(self._text("SELECT pg_advisory_lock(:key)"), {"key": self._key})

    def release(self) -> None:
        self._conn.execute(self._text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})


class _ThreadLock:
    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self) -> None:
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()


def _lock_key(study_name: str) -> int:
    """A signed 64-bit advisory-lock key for a study name (stable across machines)."""
    digest = hashlib.sha256(f"ecotune-claim:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def claim_lock(storage_url: str | None, study_name: str) -> Any:
    """The lock under which workers of ``study_name`` count trials and create the next one.

    Example:
        >>> lock = claim_lock(None, "demo")  # in-memory storage: a thread lock
        >>> lock.acquire(); lock.release()
    """
    if storage_url is None or storage_url == "sqlite:///:memory:":
        return _ThreadLock()
    log = journal_path(storage_url)
    if log is not None:
        return _FileLock(log.with_name(log.name + ".ecotune-claim"))
    if storage_url.startswith("sqlite:///"):
        db = Path(storage_url.removeprefix("sqlite:///"))
        return _FileLock(db.with_name(db.name + ".ecotune-claim"))
    if storage_url.startswith("postgresql"):
        return _PostgresAdvisoryLock(storage_url, _lock_key(study_name))
    # Other databases (MySQL, ...): trials are still counted before each is created, so a
    # run overshoots by at most one trial per concurrent worker.
    return _ThreadLock()


class _ThreadsThen:
    """A claim lock taken by one thread of this process at a time, then across processes
    (an advisory lock or lock file does not exclude threads sharing it)."""

    def __init__(self, lock: Any) -> None:
        self._threads = threading.Lock()
        self._lock = lock

    def acquire(self) -> None:
        self._threads.acquire()
        try:
            self._lock.acquire()
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        try:
            self._lock.release()
        finally:
            self._threads.release()


class _Trial:
    """Runs the objective for one trial: releases the claim lock once the trial exists,
    records why a trial failed, fails non-finite values."""

    def __init__(self, objective: Callable[[optuna.Trial], Sequence[float]],
                 release: Callable[[], None], storage_url: str = "",
                 stopped: Callable[[], None] | None = None) -> None:
        self.objective = objective
        self.release = release
        self.storage_url = storage_url  # its password never goes into a fail reason
        self.stopped = stopped  # called when the objective stopped the study

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        self.release()
        try:
            values = tuple(self._run(trial))
        except (KeyboardInterrupt, MemoryError, Exception) as err:
            if isinstance(err, optuna.TrialPruned):
                raise
            if isinstance(err, MemoryError) or _is_out_of_memory(err):
                # Drop what the failed trial held before the next one starts.
                gc.collect()
                _empty_cuda_cache()
            record_failure(trial, err, self.storage_url)
            raise  # Optuna fails the trial (and raises KeyboardInterrupt again)
        bad = [v for v in values if not math.isfinite(v)]
        if bad:
            reason = f"objective value {bad[0]} is not finite"
            trial.set_user_attr(ATTR_FAIL_REASON, reason)
            raise ValueError(reason)
        return values

    def _run(self, trial: optuna.Trial) -> Sequence[float]:
        try:
            return self.objective(trial)
        finally:
            # A stop from inside the trial (the study energy budget): seen here, in this
            # thread, before another thread's next study.optimize() resets Optuna's flag.
            if self.stopped is not None and trial.study._stop_flag:
                self.stopped()


def _is_out_of_memory(err: BaseException) -> bool:
    return type(err).__name__ == "OutOfMemoryError" or "out of memory" in str(err).lower()


def _empty_cuda_cache() -> None:
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def run_worker(spec: StudySpec, study: optuna.Study, target_trials: int,
               objective: Callable[[optuna.Trial], Sequence[float]],
               callbacks: Sequence[Callback] = ()) -> StudyEnergyBudget | None:
    """Run trials of ``study`` until it holds ``target_trials`` trials, its energy budget
    is spent, or a callback calls ``study.stop()``.

    Args:
        spec: the study's spec (budgets, objectives, storage URL).
        study: the study, opened by this process.
        target_trials: stop once the study holds this many trials, counted in storage over
            all workers.
        callbacks: called after each trial of this worker with ``(study, frozen_trial)``.
        objective: the objective (``ecotune.search`` passes the built-in trainer).

    Returns:
        The study energy budget (its ``reached`` says whether it ended the run), or None.

    With ``[study] n_jobs = k`` the trials run in ``k`` threads (see the module's
    docstring); Ctrl-C then lets the running trials end and starts no new one.

    Raises:
        KeyboardInterrupt: on Ctrl-C, after the running trial was failed.
        ValueError: ``n_jobs > 1`` on an in-memory SQLite database (one per connection).

    Example:
        >>> import optuna
        >>> from ecotune.spec import load_spec
        >>> spec = load_spec({"study": {"name": "w", "storage": "sqlite:///:memory:"}})
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> _ = run_worker(spec, study, 3, lambda t: (t.suggest_float("x", 0, 1), 1.0))
        >>> count_trials(study)
        3
    """
    if spec.study.n_jobs > 1 and ":memory:" in spec.study.storage:
        raise ValueError(f"[study] n_jobs = {spec.study.n_jobs} needs storage its threads "
                         f"share; {spec.study.storage} is one database per connection (use "
                         "a file: sqlite:///study.db)")
    budget = (StudyEnergyBudget(spec.budgets.study_energy_j)
              if spec.budgets.study_energy_j is not None else None)
    lock = _ThreadsThen(claim_lock(spec.study.storage, spec.study.name))
    # A killed run's trial ends failed at once, with a reason; a worker that dies while
    # this one runs, within a heartbeat interval of its grace period's end.
    fail_dead = DeadTrialCheck(study)
    fail_dead()
    done = threading.Event()  # any thread saw the end: the others start no new trial

    def loop() -> None:
        try:
            _trials()
        finally:
            done.set()

    def _trials() -> None:
        while not done.is_set():
            fail_dead()
            held = True
            lock.acquire()

            def release() -> None:
                nonlocal held
                if held:
                    held = False
                    lock.release()

            try:
                # Under the lock: the budget counts the trials running in every thread and
                # worker, so none starts once it is spent.
                if budget is not None and budget.exhausted(study):
                    break
                if count_trials(study) >= target_trials:
                    break
                # No callbacks, no callback list: Optuna then skips reading the finished
                # trial back for them (a storage read per trial).
                with heartbeat_follows():  # the trial's first heartbeat: with the trial
                    study.optimize(_Trial(objective, release, spec.study.storage, done.set),
                                   n_trials=1, catch=(Exception,),
                                   callbacks=list(callbacks) + [stopped] if callbacks
                                   else None)
            finally:
                release()
            if study._stop_flag:  # a callback called study.stop()
                break

    def stopped(_study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        # Another thread's next study.optimize() resets Optuna's stop flag: keep it here
        # (a callback's stop; a stop inside the trial is kept by _Trial).
        if study._stop_flag:
            done.set()

    n_jobs = spec.study.n_jobs
    if n_jobs == 1:
        loop()
        return budget
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_catching(loop, errors, i), daemon=True,
                                name=f"ecotune-trials-{i}") for i in range(n_jobs)]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        done.set()  # the running trials finish; no new one starts
        raise
    if errors:
        raise errors[0]
    return budget


def _catching(loop: Callable[[], None], errors: list[BaseException],
              index: int) -> Callable[[], None]:
    def run() -> None:
        _job.index = index  # this thread's job_index()
        try:
            loop()
        except BaseException as err:  # raised again in the worker's own thread
            errors.append(err)

    return run


# ---------------------------------------------------------------------------------------
# Local worker processes (ecotune run --workers N)


def worker_entry(main: Callable[[dict, int, int], None], spec_data: dict, worker_index: int,
                 target_trials: int) -> None:
    """Entry point of a spawned worker: run ``main(spec_data, worker_index,
    target_trials)`` (open the study, run trials), then exit; errors end it with one line
    on stderr, password hidden, instead of a traceback."""
    # A terminal's Ctrl-C reaches every process of the group; SIGTERM from the parent too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        main(spec_data, worker_index, target_trials)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as err:
        import sys

        first = (str(err).strip().splitlines() or [""])[0]
        print(f"ecotune worker {multiprocessing.current_process().name}: "
              f"{scrub(f'{type(err).__name__}: {first}', spec_data['study']['storage'])}",
              file=sys.stderr)
        raise SystemExit(1) from None


@contextlib.contextmanager
def _visible_gpus(value: str | None) -> Iterator[None]:
    """``CUDA_VISIBLE_DEVICES = value`` while a worker is spawned (it inherits this
    environment, so the variable is set before it imports torch); None: unchanged."""
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


@contextlib.contextmanager
def start_local_workers(spec: StudySpec, target_trials: int, n_processes: int,
                        main: Callable[[dict, int, int], None], gpus: Sequence[str] = (),
                        ) -> Iterator[list[multiprocessing.Process]]:
    """Start ``n_processes`` worker processes (indexes 1..n) on this machine, each running
    ``main(spec_data, worker_index, target_trials)`` (a module-level function: it is
    pickled); on leaving the context wait for them, or interrupt them (SIGINT, then
    SIGTERM) on an exception.

    The spec, storage URL and its password included, reaches each worker through the pipe
    of the ``spawn`` start method, never on its command line: ``ps`` shows none of it.
    With ``gpus``, worker i sees only GPU ``gpus[i mod len(gpus)]``.
    """
    context = multiprocessing.get_context("spawn")
    spec_data = spec.model_dump(mode="json")
    processes = [context.Process(target=worker_entry,
                                 args=(main, spec_data, i, target_trials),
                                 name=f"ecotune-worker-{i}", daemon=False)
                 for i in range(1, n_processes + 1)]
    for i, process in enumerate(processes, start=1):
        with _visible_gpus(worker_gpu(gpus, i) if gpus else None):
            process.start()
    try:
        yield processes
    except BaseException:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGINT)
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()
        raise
    for process in processes:
        process.join()
