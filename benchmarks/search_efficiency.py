"""How much search energy each sampler spends for how good a front (docs/searching.md).

Runs the same search space (width, lr, epochs, eat_lambda of the built-in cnn on digits)
under each sampler, with the same number of trials, through ``ecotune.search.run``; then
prints per sampler the final hypervolume as a fraction of the reference hypervolume (that
of the front of all runs together), the search energy spent, and the search energy at
which the run first reached 95 % of the reference hypervolume.

Each sampler runs twice: as is, and with energy-aware early stopping (``+es``: trials
predicted to end dominated by the front stop, pruned). The reference front is that of all
runs together, so the two are measured against the same yardstick; the last lines print,
per sampler, the search energy early stopping saved and the hypervolume it cost, and how
each Bayesian sampler's energy to 95 % compares with grid search's.

    .venv/bin/python benchmarks/search_efficiency.py --quick        # digits, ~1-2 min
    .venv/bin/python benchmarks/search_efficiency.py --n-trials 40 --repeats 3

With ``--replay`` it trains nothing: it replays a recorded table (default the
Fashion-MNIST one) under 30 seeds per method, with 95 % confidence intervals (energy to
90/95/99/99.5 % of the reference hypervolume, log hypervolume difference, ratios to random
and grid search), the predictor's errors and the replay's cost against bare Optuna, and
ends with one line per target of issue 19 (benchmarks/_replay_targets.py):

    .venv/bin/python benchmarks/search_efficiency.py --replay --processes 2
    .venv/bin/python benchmarks/search_efficiency.py --replay benchmarks/tables/digits_cnn.csv \
        --study benchmarks/tables/digits_cnn.toml
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import optuna

from ecotune.comparison import comparison_runs, run_comparison
from ecotune.names import ATTR_METER
from ecotune.report.compare import compare_studies

SAMPLERS = ("grid", "random", "tpe", "gp", "skopt")
TABLES = Path(__file__).resolve().parent / "tables"
STUDIES = Path(__file__).resolve().parent.parent / "studies"


def spec(storage: str, epochs_high: int, meter: str, early_stopping: bool = False) -> dict:
    """The study: a float grid is given for every float knob, so grid search can run."""
    return {
        "study": {"name": "efficiency-es" if early_stopping else "efficiency",
                  "storage": storage, "seed": 0},
        "early_stopping": {"enabled": early_stopping, "min_epochs": 1, "margin": 0.01},
        "data": {"name": "digits"},
        "model": {"name": "cnn"},
        "training": {"batch_size": 64, "optimizer": "adam"},
        "energy": {"meter": meter},
        "search_space": {
            "width": {"type": "float", "low": 0.25, "high": 2.0,
                      "grid": [0.25, 0.5, 1.0, 2.0]},
            "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True,
                   "grid": [1e-3, 3e-3, 1e-2, 3e-2]},
            "epochs": {"type": "int", "low": 1, "high": epochs_high,
                       "grid": sorted({1, max(1, epochs_high // 2), epochs_high})},
            "eat_lambda": {"type": "float", "low": 0.0, "high": 2.0, "grid": [0.0, 1.0, 2.0]},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="16 trials per sampler, at most 6 epochs, one repeat")
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=10, help="largest epochs value searched")
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--meter", default="auto", help="auto, codecarbon or cputime")
    parser.add_argument("--replay", nargs="?", const=str(TABLES / "fashion_mnist_cnn.csv"),
                        metavar="TABLE", help="replay a recorded table instead of training")
    parser.add_argument("--study", default=str(STUDIES / "fashion_mnist_cnn.toml"),
                        help="the table's study file (with --replay)")
    parser.add_argument("--processes", type=int, default=1,
                        help="replay runs in this many processes (with --replay)")
    parser.add_argument("--methods", help="with --replay: only these labels, e.g. grid,tpe+sh")
    parser.add_argument("--slow-seeds", type=int,
                        help="with --replay: seeds for gp and the three skopt methods (tens of "
                             "seconds a run; default: as many as the others)")
    parser.add_argument("--slow-samplers",
                        help="with --replay: every method of these samplers gets --slow-seeds "
                             "too, e.g. tpe,grid (a loaded machine)")
    parser.add_argument("--min-epochs", type=int,
                        help="with --replay: min_epochs of every +es/+sh/+hb method (default: "
                             "the study file's [early_stopping])")
    parser.add_argument("--first-rung", type=int,
                        help="with --replay: min_epochs (the first rung) of the +sh and +hb "
                             "methods only")
    parser.add_argument("--rung-order", choices=("crowding", "epsilon_net"),
                        help="with --replay: [early_stopping] rung_order of the +sh and +hb "
                             "methods only (default: the study file's)")
    parser.add_argument("--reduction-factor", type=int,
                        help="with --replay: reduction_factor of every +sh/+hb method")
    parser.add_argument("--peer", metavar="JSON",
                        help="with --replay: benchmarks/peer_moasha.py's figures, for T3")
    args = parser.parse_args()
    if args.replay:
        from _replay_targets import main as replay_main

        replay_main(Path(args.replay), Path(args.study),
                    30 if args.repeats == 1 else args.repeats,
                    None if args.n_trials == 30 else args.n_trials, args.processes,
                    args.methods.split(",") if args.methods else None, args.slow_seeds,
                    {k: v for k, v in (("min_epochs", args.min_epochs),
                                       ("reduction_factor", args.reduction_factor))
                     if v is not None},
                    Path(args.peer) if args.peer else None,
                    args.slow_samplers.split(",") if args.slow_samplers else None,
                    {k: v for k, v in (("min_epochs", args.first_rung),
                                       ("rung_order", args.rung_order)) if v is not None}
                    or None)
        return
    n_trials, epochs, repeats = args.n_trials, args.epochs, args.repeats
    if args.quick:
        n_trials, epochs, repeats = 16, 6, 1
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = [s for s in args.samplers.split(",") if s]
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{Path(tmp) / 'efficiency.db'}"
        started = time.perf_counter()
        studies = {}
        for early_stopping in (False, True):
            runs = comparison_runs(spec(storage, epochs, args.meter, early_stopping),
                                   samplers, n_trials, repeats)
            done = run_comparison(runs, on_run=lambda s, r, st: print(
                f"  ran {st.study_name}: {len(st.trials)} trials", flush=True))
            studies.update({f"{k}+es" if early_stopping else k: v for k, v in done.items()})
        wall_s = time.perf_counter() - started
        comparison = compare_studies(studies)
        meters = sorted({t.user_attrs.get(ATTR_METER, "?") for runs_ in studies.values()
                         for st in runs_ for t in st.trials})
    print(f"\ndigits, cnn; {n_trials} trials per run, {repeats} run(s) per sampler; "
          f"energy meter {'/'.join(meters)}; wall time {wall_s:.0f} s")
    print(f"reference hypervolume {comparison.reference_hypervolume:.4g} "
          f"(reference point: accuracy {comparison.reference[0]:.3g}, "
          f"energy {comparison.reference[1]:.4g} J)")
    print(f"{'sampler':>9} {'hv ratio':>9} {'search energy (J)':>18} {'J to 95 %':>10}")
    rows = {row["sampler"]: row for _, row in comparison.table.iterrows()}
    for name, row in rows.items():
        to_target = row["energy_to_target_j"]
        print(f"{name:>9} {row['hypervolume_ratio']:>9.3f} "
              f"{row['search_energy_j']:>18.1f} "
              f"{'never' if math.isnan(to_target) else f'{to_target:.1f}':>10}")
    print("\nearly stopping: search energy saved, hypervolume ratio lost (points)")
    for name in samplers:
        plain, stopped = rows.get(name), rows.get(f"{name}+es")
        if plain is not None and stopped is not None:
            saved = 1 - stopped["search_energy_j"] / plain["search_energy_j"]
            lost = (plain["hypervolume_ratio"] - stopped["hypervolume_ratio"]) * 100
            print(f"{name:>9} {saved:>8.1%} saved {lost:>+6.2f} points")
    grid = rows.get("grid")
    if grid is not None and not math.isnan(grid["energy_to_target_j"]):
        print("\nenergy to 95 % of the reference hypervolume, against grid search's")
        for name in ("gp", "skopt", "tpe", "gp+es", "skopt+es", "tpe+es"):
            row = rows.get(name)
            if row is not None and not math.isnan(row["energy_to_target_j"]):
                print(f"{name:>9} {row['energy_to_target_j'] / grid['energy_to_target_j']:>6.2f}"
                      " x grid's")


if __name__ == "__main__":
    main()
