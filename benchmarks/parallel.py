"""Parallel trials on one machine: throughput and energy per trial, one trial at a time
against two at once, in threads (``n_jobs``) and in worker processes (``--workers``).

Run from the repository root:

    .venv/bin/python benchmarks/parallel.py [--trials 8] [--work 300] [--meter cputime]

Every trial is the same own-loop trial (``ecotune.measure``) of CPU-bound torch work:
``--work`` matrix products of 256 x 256, with one intra-op thread
(``torch.set_num_threads(1)`` is process-wide; each product runs in the trial's own thread
and releases the GIL, so two threads use two cores). For each pair the benchmark prints

- the throughput ratio (trials per second, two at once / one at a time): target >= 1.6x on
  2 cores;
- the ratio of the mean energy per trial (two at once / one at a time): target within
  10 % of 1.0. The same work costs the same energy whether or not another trial runs beside
  it, if each reading is split fairly and nothing is counted twice.

Throughput is timed from the first trial's start to the last trial's end as stored, so
worker processes' start-up (importing torch, about 3 s) is not counted: each worker warms
up (imports, torch's first products, the meter's first window) and the workers then start
their trials together, as the threads do. The CPU-time meter
is the default: on a machine without RAPL its figure is the work's CPU seconds, which the
attribution must conserve. With a meter that includes a static part (CodeCarbon's RAM
model, RAPL's idle package), two trials at once genuinely cost less each: that part of the
draw is shared, and the energy ratio drops below 1 by design.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _objective(work: int, meter: str):
    import torch

    import ecotune

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        a = torch.randn(256, 256)
        with ecotune.measure(trial, meter=meter, device="cpu") as m:
            for _ in range(work):
                a = torch.tanh(a @ a.T * 0.01)
        return x, m.energy_j

    return objective


def _study(storage: str | None, name: str):
    import optuna

    import ecotune

    if storage is None:
        return ecotune.create_study(name, sampler="random", storage=None, seed=0)
    return optuna.load_study(study_name=name, storage=storage)


def _figures(study) -> tuple[float, float]:
    """(trials per second from first start to last end, mean energy per trial)."""
    trials = [t for t in study.trials if t.state.name == "COMPLETE"]
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    energy = statistics.fmean(t.user_attrs["energy_j"] for t in trials)
    return len(trials) / (end - start).total_seconds(), energy


def threads(n_trials: int, n_jobs: int, work: int, meter: str) -> tuple[float, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(None, f"threads-{n_jobs}")
    study.optimize(_objective(work, meter), n_trials=n_trials, n_jobs=n_jobs)
    return _figures(study)


def _warm_up(work: int, meter: str) -> None:
    """Pay a process's one-off costs (imports, torch's first products, the meter's first
    window) outside the timed trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.optimize(_objective(min(work, 10), meter), n_trials=2)


def _worker(storage: str, name: str, n_trials: int, work: int, meter: str, start) -> None:
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _warm_up(work, meter)
    study = _study(storage, name)
    # Every worker starts its trials together: one that is still importing would leave
    # the other alone at the start of the timed span.
    start.wait(timeout=300)
    study.optimize(_objective(work, meter), n_trials=n_trials)


def workers(n_trials: int, n_workers: int, work: int, meter: str,
            folder: Path) -> tuple[float, float]:
    import ecotune

    storage = f"sqlite:///{folder / f'workers-{n_workers}.db'}"
    name = f"workers-{n_workers}"
    ecotune.create_study(name, sampler="random", storage=storage, seed=0)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(n_workers)
    processes = [context.Process(target=_worker, args=(storage, name, n_trials // n_workers,
                                                       work, meter, start))
                 for _ in range(n_workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    return _figures(_study(storage, name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--work", type=int, default=300,
                        help="matrix products per trial (300: about 0.5 s on one core)")
    parser.add_argument("--meter", default="cputime")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} before the run; "
          f"{args.trials} trials of {args.work} 256x256 products each, meter {args.meter}")
    _warm_up(args.work, args.meter)
    rows = []
    t0 = time.perf_counter()
    one, two = (threads(args.trials, n, args.work, args.meter) for n in (1, 2))
    rows.append(("n_jobs 2 vs 1", one, two))
    with tempfile.TemporaryDirectory() as folder:
        one, two = (workers(args.trials, n, args.work, args.meter, Path(folder))
                    for n in (1, 2))
    rows.append(("--workers 2 vs 1", one, two))
    print(f"{'':18} {'trials/s (1)':>12} {'trials/s (2)':>12} {'throughput':>10} "
          f"{'J/trial (1)':>11} {'J/trial (2)':>11} {'energy':>7}")
    for label, (rate1, energy1), (rate2, energy2) in rows:
        print(f"{label:18} {rate1:12.3f} {rate2:12.3f} {rate2 / rate1:9.2f}x "
              f"{energy1:11.3f} {energy2:11.3f} {energy2 / energy1:7.3f}")
    print(f"targets: throughput >= 1.6x, energy ratio within 0.9-1.1; "
          f"{time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
