"""Long studies: what a report and what ecotune's per-trial bookkeeping cost as a study
grows, with the growth exponent k of each (time ~ n^k).

Run from the repository root:

    .venv/bin/python benchmarks/scale.py            # 1k/10k/100k and 100/1k/10k trials
    .venv/bin/python benchmarks/scale.py --quick    # smaller sizes, a smoke run

Prints, in one run:

1. ``ecotune report --no-png`` (a fresh process, as a user runs it) on two-objective
   SQLite studies of 1,000, 10,000 and 100,000 trials: wall time, peak memory (the
   process's max RSS), and the size of the figures saved into the study for
   optuna-dashboard. Beside it, the hypervolume history alone, kept up to date trial by
   trial, against the obvious alternative (the hypervolume recomputed from scratch
   after every trial), as a ratio. Targets: report at 10,000 trials <= 15 s; at 100,000
   trials <= 60 s and <= 1.5 GB peak (issue 25). The built studies are kept under
   ``$TMPDIR/ecotune-scale-cache`` for the next run (100,000 trials take minutes).
2. ecotune's per-trial bookkeeping at 100, 1,000 and 10,000 stored trials, on SQLite
   and (where Debian's postgresql package is installed) PostgreSQL: the time per trial
   of ``run_worker`` (claim lock, trial count, study energy budget, Optuna's own trial
   creation and storage writes, the early stopper's front after every epoch, the
   attributes an ecotune trial records) with an objective that does no training, the
   sampler's own time (multivariate TPE, ecotune's default) taken out and shown beside
   it. The first trial of a process reads the whole study once and is shown apart: the
   first trial of a worker joining the study (the target: the time until its parameters
   are sampled and it could start training; beside it its whole first trial: the study's
   energy spent, the trial count, Optuna's cache sync, the TPE sampler
   reading every complete trial, the early stopper's front, the writes; the sampler's
   part shown beside it), beside what Optuna alone reads before a first trial
   (``study.ask`` syncs its trial cache with every stored trial), with ecotune's storage
   (:class:`ecotune.storage.BulkReadRDBStorage`: a finished trial's user attributes are
   fetched when first read) and with Optuna's. Targets (issue 25): growth k <= 0.1; a
   joining worker's first trial at 10,000 stored trials started within 1 s, sampler included.

Studies are written with one bulk insert per table (benchmarks/_big_study.py), not by
running trainers: ``study.add_trials`` takes about 16 ms per trial on SQLite here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _big_study import EPOCHS, build_study, trial_user_attrs  # noqa: E402

from ecotune.epochs import EpochRecord  # noqa: E402
from ecotune.execution import run_worker  # noqa: E402
from ecotune.names import ATTR_EARLY_STOPPING, CONSTRAINT_TRIAL_ENERGY  # noqa: E402
from ecotune.pareto import hypervolume  # noqa: E402
from ecotune.report.history import (  # noqa: E402
    hypervolume_history,
    reference_point,
    study_points,
)
from ecotune.rules import EnergyAwareStopper, TrialEnergyBudget  # noqa: E402
from ecotune.search import prepare  # noqa: E402
from ecotune.storage import open_storage, set_user_attrs  # noqa: E402
from tests.pg import create_database, postgres_bin, temporary_postgres  # noqa: E402

DASHBOARD_KEY = "dashboard:plot_data:"  # optuna-dashboard's study system attributes
#: Report targets by study size: (seconds, peak MB); 10,000: issue 13, 100,000: issue 25.
REPORT_TARGETS = {10_000: (15, 1536), 100_000: (60, 1536)}


def growth(sizes: list[int], seconds: list[float]) -> float:
    """k of time ~ n^k, least squares on log-log."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


# ----------------------------------------------------------------------------- reports


# Linux keeps a process's peak RSS across exec, so a child spawned by this process (which
# holds a just-built 100,000-trial study: ~1.6 GB) would report this process's peak as its
# own. A small Python process in between spawns the report and hands back its usage.
_REAPER = """
import json, os, sys
pid = os.posix_spawn(sys.executable, [sys.executable, *sys.argv[1:]], os.environ)
_, status, usage = os.wait4(pid, 0)
print(json.dumps([usage.ru_utime + usage.ru_stime, usage.ru_maxrss]), file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _report(url: str, name: str, out: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system: less inflated than wall time on a
    machine others share) and peak RSS (MB) of ``ecotune report --no-png`` in a fresh
    process."""
    start = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-c", _REAPER, "-m", "ecotune", "report", "--storage", url,
         "--study-name", name, "--no-png", "--out", str(out)], cwd=out.parent,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall_s = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"ecotune report failed: {process.stderr.decode()[-2000:]}")
    cpu_s, rss_kb = json.loads(process.stderr.decode().strip().splitlines()[-1])
    return wall_s, cpu_s, rss_kb / 1024


def _dashboard_sizes_kb(study: optuna.Study) -> dict[str, float]:
    sizes: dict[str, float] = {}
    attrs = study._storage.get_study_system_attrs(study._study_id)
    for key, value in attrs.items():
        if key.startswith(DASHBOARD_KEY):
            graph = key.removeprefix(DASHBOARD_KEY).rsplit(":", 1)[0]
            sizes[graph] = sizes.get(graph, 0.0) + len(str(value)) / 1024
    return sizes


def _dashboard_study_page(url: str, name: str) -> tuple[float, float]:
    """Seconds and MB of optuna-dashboard's study API (what its study page fetches),
    served in-process by ``optuna_dashboard.wsgi``."""
    import io
    from wsgiref.util import setup_testing_defaults

    from optuna_dashboard import wsgi

    storage = open_storage(url)
    study_id = optuna.load_study(study_name=name, storage=storage)._study_id
    app = wsgi(storage)
    environ: dict = {"PATH_INFO": f"/api/studies/{study_id}", "QUERY_STRING": "after=0",
                     "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status: list[str] = []
    start = time.perf_counter()
    body = b"".join(app(environ, lambda s, headers, *_: status.append(s)))
    seconds = time.perf_counter() - start
    if not status or not status[0].startswith("200"):
        raise SystemExit(f"optuna-dashboard answered {status}")
    return seconds, len(body) / 2**20


def _history_ratio(study: optuna.Study) -> tuple[float, float]:
    """Seconds of the incremental history, and of recomputing from scratch per trial."""
    study.get_trials(deepcopy=False)  # loaded from storage before timing: compute only
    start = time.perf_counter()
    history = hypervolume_history(study)
    incremental_s = time.perf_counter() - start
    maximize = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
    points = study_points(study)
    reference = reference_point(points, study.metric_names, maximize)
    start = time.perf_counter()
    # The obvious alternative: after each trial, the hypervolume of every point so far.
    volumes = [hypervolume(points[: i + 1], reference, maximize) for i in range(len(points))]
    scratch_s = time.perf_counter() - start
    assert math.isclose(volumes[-1], history["hypervolume"].iloc[-1], rel_tol=1e-9)
    return incremental_s, scratch_s


#: Built studies are kept here between runs (a 100,000-trial study takes minutes to build).
CACHE = Path(tempfile.gettempdir()) / "ecotune-scale-cache"


def _cached_study(work: Path, name: str, n: int) -> str:
    """A fresh copy in ``work`` of the study ``name`` with ``n`` trials, built once into
    :data:`CACHE` (the report writes its figures into the study: never into the cache)."""
    CACHE.mkdir(exist_ok=True)
    cached = CACHE / f"{name}-v1.db"
    if not cached.exists():
        partial = CACHE / f"{name}-partial.db"
        partial.unlink(missing_ok=True)
        built = build_study(f"sqlite:///{partial}", name, n)
        built._storage._backend.engine.dispose()  # closed (WAL checkpointed) before moving
        partial.rename(cached)
    shutil.copyfile(cached, work / f"{name}.db")
    return f"sqlite:///{work}/{name}.db"


def reports(work: Path, sizes: list[int], scratch_up_to: int) -> float:
    print("\n1. ecotune report --no-png, two objectives, SQLite (fresh process each)")
    print(f"{'trials':>7} {'wall (s)':>9} {'CPU (s)':>8} {'peak RSS (MB)':>14} "
          f"{'dashboard (KB)':>15}   history: incremental / from scratch")
    times, peaks = [], []
    for n in sizes:
        url = _cached_study(work, f"report-{n}", n)
        study = optuna.load_study(study_name=f"report-{n}", storage=open_storage(url))
        wall_s, cpu_s, rss_mb = _report(url, f"report-{n}", work / f"report-{n}")
        times.append(wall_s)
        peaks.append(rss_mb)
        figures = _dashboard_sizes_kb(optuna.load_study(study_name=f"report-{n}",
                                                        storage=url))
        shown = ", ".join(f"{k.removeprefix('ecotune-')} {v:.0f} KB" for k, v in
                          sorted(figures.items()))
        if n <= scratch_up_to:
            incremental_s, scratch_s = _history_ratio(study)
            ratio = (f"{incremental_s:.3f} s / {scratch_s:.2f} s = "
                     f"{scratch_s / incremental_s:.0f}x faster")
        else:
            ratio = "(from scratch skipped: too slow)"
        print(f"{n:>7,} {wall_s:>9.2f} {cpu_s:>8.2f} {rss_mb:>14.0f} "
              f"{sum(figures.values()):>15.0f}   {ratio}", flush=True)
    k = growth(sizes, times)
    print(f"growth: report time ~ n^{k:.2f}")
    for n, wall_s, rss_mb, target_s, target_mb in ((n, t, m, *REPORT_TARGETS[n])
                                                   for n, t, m in zip(sizes, times, peaks)
                                                   if n in REPORT_TARGETS):
        print(f"report at {n:,} trials: {wall_s:.1f} s (target <= {target_s} s: "
              f"{'holds' if wall_s <= target_s else 'misses'}), peak {rss_mb:.0f} MB "
              f"(target <= {target_mb} MB: {'holds' if rss_mb <= target_mb else 'misses'})")
    print(f"figures saved for optuna-dashboard at {sizes[-1]:,} trials: {shown}")
    # optuna-dashboard's own page reads every trial: shown up to 10,000 (issue 13's size).
    page_sizes = [n for n in sizes if n <= 10_000]
    if page_sizes:  # none where only larger sizes were asked for
        page_n = max(page_sizes)
        seconds, mb = _dashboard_study_page(f"sqlite:///{work}/report-{page_n}.db",
                                            f"report-{page_n}")
        print(f"optuna-dashboard study API at {page_n:,} trials (its study page's data, "
              f"ecotune's figures included): {mb:.1f} MB in {seconds:.1f} s")
    return k


# ------------------------------------------------------------------------- bookkeeping


class _TimedSampler(optuna.samplers.BaseSampler):
    """Wraps a sampler and adds up the time spent in it."""

    def __init__(self, inner: optuna.samplers.BaseSampler) -> None:
        self.inner = inner
        self.seconds = 0.0

    def _timed(self, method: str, *args):
        start = time.perf_counter()
        try:
            return getattr(self.inner, method)(*args)
        finally:
            self.seconds += time.perf_counter() - start

    def infer_relative_search_space(self, study, trial):
        return self._timed("infer_relative_search_space", study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._timed("sample_relative", study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._timed("sample_independent", study, trial, param_name,
                           param_distribution)

    def before_trial(self, study, trial):
        return self._timed("before_trial", study, trial)

    def after_trial(self, study, trial, state, values):
        return self._timed("after_trial", study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


#: When the first trial since the last clear() had its parameters (perf_counter seconds).
_STARTED: dict[str, float] = {}


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    """What an ecotune trial does besides training: sample, watch every epoch (trial
    budget, early stopper's front), record the meter's and trainer's attributes."""
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    width = trial.suggest_float("width", 0.25, 2.0)
    # The trial has started: its parameters are sampled, training could begin.
    _STARTED.setdefault("at", time.perf_counter())
    budget = TrialEnergyBudget(1e9, EPOCHS)
    stopper = EnergyAwareStopper(trial.study, EPOCHS, margin=0.5)  # never stops here
    curve = []
    for epoch in range(1, EPOCHS + 1):
        record = EpochRecord(epoch, 1.0 / epoch, 0.5 * width, 0.01 * epoch,
                             energy_j=0.1 * epoch)
        budget(record)
        stopper(record)
        curve.append(dataclasses.asdict(record))
    # The attributes in one transaction, as an ecotune trial's window writes them.
    set_user_attrs(trial, {**trial_user_attrs(0.5 * width, 0.8, curve),
                           ATTR_EARLY_STOPPING: stopper.record()})
    trial.set_constraint(CONSTRAINT_TRIAL_ENERGY, budget.constraint_j(0.8, EPOCHS))
    return 0.5 * width + lr, 0.8


@dataclasses.dataclass
class _FirstTrial:
    """Seconds of a process's first trial: wall, this process's CPU, and the parts of the
    wall time in the storage's reads of many trials and in the sampler."""

    wall_s: float
    cpu_s: float
    read_s: float
    sampler_s: float
    started_s: float  # until its parameters were sampled (the trial could start training)


def _timed_reads(study: optuna.Study) -> dict[str, float]:
    """Adds up the time the study's relational storage spends reading many trials (what
    Optuna's trial cache calls to sync, ``BulkReadRDBStorage._get_trials``)."""
    backend = study._storage._backend
    inner, spent = backend._get_trials, {"s": 0.0}

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent["s"] += time.perf_counter() - start

    backend._get_trials = timed
    return spent


def _bookkeeping(url: str, n_stored: int,
                 n_trials: int) -> tuple[_FirstTrial, float, float]:
    """(the first trial, median per-trial s without the sampler, median sampler s)."""
    name = f"book-{n_stored}"
    build_study(url, name, n_stored)
    spec, study = prepare({"study": {"name": name, "storage": url, "sampler": "tpe",
                                     "seed": 0},
                           "budgets": {"study_energy_j": 1e12}})
    sampler = _TimedSampler(study.sampler)
    study.sampler = sampler
    reads = _timed_reads(study)
    _STARTED.clear()
    start, cpu = time.perf_counter(), time.process_time()
    run_worker(spec, study, n_stored + 1, _objective)
    first = _FirstTrial(time.perf_counter() - start, time.process_time() - cpu, reads["s"],
                        sampler.seconds, _STARTED["at"] - start)
    marks = [(time.perf_counter(), sampler.seconds)]

    def mark(_study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        marks.append((time.perf_counter(), sampler.seconds))

    run_worker(spec, study, n_stored + 1 + n_trials, _objective, callbacks=[mark])
    assert len(study.trials) == n_stored + 1 + n_trials
    # Per trial, from one trial's end to the next one's (claim lock, count and budget
    # included); medians, since other work on a shared machine adds outliers.
    total = np.diff([t for t, _ in marks])
    in_sampler = np.diff([s for _, s in marks])
    return first, float(np.median(total - in_sampler)), float(np.median(in_sampler))


def _optuna_first_read(url: str, name: str, storage: optuna.storages.BaseStorage) -> float:
    """Seconds of what Optuna alone reads before a process's first trial: ``study.ask``
    first syncs Optuna's trial cache with every stored trial (then looks for a waiting
    one); this does that read, on a fresh storage object, and writes nothing."""
    start = time.perf_counter()
    study = optuna.load_study(study_name=name, storage=storage)
    study._storage.get_all_trials(study._study_id, deepcopy=False,
                                  states=(optuna.trial.TrialState.WAITING,))
    return time.perf_counter() - start


def bookkeeping(work: Path, sizes: list[int], n_trials: int) -> dict[str, float]:
    print(f"\n2. per-trial bookkeeping (run_worker, no training; median of {n_trials} trials "
          "after the first)")
    print(f"{'storage':>10} {'stored':>7} {'ecotune + Optuna (ms)':>22} "
          f"{'TPE sampler (ms)':>17}   first trial: wall (s)  CPU (s)  storage read (s)  "
          "TPE (s)")
    backends = [("sqlite", lambda n: f"sqlite:///{work}/book-{n}.db")]
    growths = {}
    pg_bin = postgres_bin()
    with temporary_postgres(pg_bin) if pg_bin else _nothing() as server:
        if server is not None:
            base, admin = server

            def pg_url(n: int) -> str:
                create_database(admin, f"book_{n}")
                return f"{base}/book_{n}"

            backends.append(("postgresql", pg_url))
        for backend, url_for in backends:
            per_trial = []
            for n in sizes:
                url = url_for(n)
                first, own_s, sampler_s = _bookkeeping(url, n, n_trials)
                per_trial.append(own_s)
                print(f"{backend:>10} {n:>7,} {own_s * 1e3:>22.1f} {sampler_s * 1e3:>17.1f} "
                      f"{first.wall_s:>24.2f} {first.cpu_s:>8.2f} {first.read_s:>17.2f} "
                      f"{first.sampler_s:>8.2f}", flush=True)
            k = growths[backend] = growth(sizes, per_trial)
            print(f"{backend:>10} growth: bookkeeping ~ n^{k:.2f} (target k <= 0.1: "
                  f"{'holds' if k <= 0.1 else 'misses'}); {sizes[-1]:,} vs {sizes[0]:,} "
                  f"stored: {(per_trial[-1] - per_trial[0]) * 1e3:+.1f} ms per trial")
            # The joining worker: its first trial, beside what Optuna alone reads first.
            name = f"book-{sizes[-1]}"
            bulk_s = _optuna_first_read(url, name, open_storage(url))
            orm_s = _optuna_first_read(url, name, optuna.storages.RDBStorage(url))
            # The target: the first trial starts within 1 s, read as its parameters
            # sampled (the whole study read, the trial created, the TPE sampler's reading
            # of every complete trial); the whole first trial shown beside it.
            print(f"{backend:>10} first trial of a worker joining {sizes[-1]:,} stored trials: "
                  f"started after {first.started_s:.2f} s, its parameters sampled by TPE "
                  f"(target <= 1 s: {'holds' if first.started_s <= 1 else 'misses'}); "
                  f"the whole trial {first.wall_s:.2f} s ({first.cpu_s:.2f} s of this "
                  f"process's CPU); of it {first.read_s:.2f} s reading the stored trials, "
                  f"{first.sampler_s:.2f} s in the sampler, "
                  f"{first.wall_s - first.read_s - first.sampler_s:.2f} s the rest; Optuna's own "
                  f"first read of them (study.ask's cache sync): {bulk_s:.2f} s with "
                  f"ecotune's storage, {orm_s:.2f} s with Optuna's RDBStorage", flush=True)
    if pg_bin is None:
        print("PostgreSQL not installed: its rows are skipped (apt-get install postgresql)")
    return growths


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--report-sizes", type=int, nargs="+",
                        help="study sizes of the report part (default 1,000 10,000 100,000)")
    parser.add_argument("--book-sizes", type=int, nargs="+",
                        help="stored trials of the bookkeeping part (default 100 1,000 10,000)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import warnings

    warnings.simplefilter("ignore")
    report_sizes = args.report_sizes or ([200, 500, 1000] if args.quick
                                         else [1000, 10000, 100000])
    book_sizes = args.book_sizes or ([100, 300, 1000] if args.quick else [100, 1000, 10000])
    print(f"benchmarks/scale.py{' --quick' if args.quick else ''}: {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="ecotune-scale-") as tmp:
        work = Path(tmp)
        reports(work, report_sizes, scratch_up_to=1000)
        bookkeeping(work, book_sizes, n_trials=5 if args.quick else 30)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
