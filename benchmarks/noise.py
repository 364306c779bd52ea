"""The quickstart's measurement noise, and what confirming its front costs.

In one process:

1. each meter available here: its coefficient of variation (standard deviation over
   mean) of energy and of duration over ``--windows`` identical windows of the fixed
   workload (``ecotune.noise.fixed_workload``), as ``ecotune meters --noise`` prints it;
2. the quickstart study (studies/quickstart.toml, 16 trials) into a temporary SQLite
   file: its wall time and the energy its trials recorded;
3. ``ecotune.confirm(study, repeats=3)`` on its front: wall time and the repeats' energy,
   each against the study's own (the obvious alternative to confirming: trusting one
   measurement per trial, at no extra cost);
4. how many of the front's points keep their place in the front of the means, how many
   are confirmed (on it, interval clear of the others), and how many overlap.

Every energy figure is the study's meter's (``[energy] meter = auto``: CodeCarbon's
estimate on a machine without RAPL or NVML).

    .venv/bin/python benchmarks/noise.py [--repeats 3] [--windows 5] [--n-trials 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import optuna

import ecotune
from ecotune.energy import meter_status
from ecotune.names import ATTR_DURATION, ATTR_ENERGY, ATTR_EVALUATION_ENERGY, METER_BACKENDS
from ecotune.noise import meter_noise
from ecotune.report import pareto_front
from ecotune.report.noise import confirmed_count

QUICKSTART = Path(__file__).resolve().parents[1] / "studies" / "quickstart.toml"


def _meter_table(windows: int) -> None:
    print(f"meter noise: {windows} windows of the fixed workload per meter, after a warm-up")
    print(f"{'meter':<11} {'energy cv':>9} {'duration cv':>11} {'mean J':>8} {'mean s':>7}  kind")
    for name in METER_BACKENDS:
        status = meter_status(name)
        if not status.available:
            print(f"{name:<11} not available: {status.reason}")
            continue
        n = meter_noise(name, windows)
        kind = "estimate" if n.is_estimate else "measured"
        print(f"{name:<11} {n.energy_cv:>9.2%} {n.duration_cv:>11.2%} "
              f"{n.mean_energy_j:>8.3g} {n.mean_duration_s:>7.3g}  {kind} ({n.meter})")


def _study_energy_j(study: optuna.Study) -> tuple[float, float]:
    trials = study.get_trials(deepcopy=False)
    energy = sum(float(t.user_attrs.get(ATTR_ENERGY, 0.0))
                 + float(t.user_attrs.get(ATTR_EVALUATION_ENERGY, 0.0)) for t in trials)
    return energy, sum(float(t.user_attrs.get(ATTR_DURATION, 0.0)) for t in trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--n-trials", type=int, default=None,
                        help="trials of the quickstart (default: its 16)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    _meter_table(args.windows)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"storage": f"sqlite:///{tmp}/noise.db"}
        if args.n_trials:
            overrides["n_trials"] = args.n_trials
        start = time.perf_counter()
        study = ecotune.run(QUICKSTART, **overrides)
        study_wall_s = time.perf_counter() - start
        study_j, study_train_s = _study_energy_j(study)
        front = pareto_front(study)
        meter = "/".join(sorted(set(front["energy_meter"].dropna())))
        print(f"\nstudy: {len(study.trials)} trials in {study_wall_s:.1f} s wall "
              f"({study_train_s:.1f} s in training windows), {study_j:.4g} J recorded "
              f"(estimate, {meter}; test evaluations included)")

        start = time.perf_counter()
        result = ecotune.confirm(study, repeats=args.repeats)
        confirm_wall_s = time.perf_counter() - start
        print(f"confirm: {len(result.candidates)} front trial(s) x {args.repeats} repeats = "
              f"{result.repeats_run} repeats in {confirm_wall_s:.1f} s wall "
              f"({result.duration_s:.1f} s in training windows), {result.energy_j:.4g} J")
        print(f"  against the study: energy {result.energy_j / study_j:.2f}x, "
              f"wall time {confirm_wall_s / study_wall_s:.2f}x")
        if result.accuracy_differs:
            print(f"  accuracy differed on repeat for trial(s) {result.accuracy_differs}")

        front = pareto_front(study)
        means = pareto_front(study, confirmed=True)
        kept = sorted(set(front["trial"]) & set(means["trial"]))
        confirmed, overlapping = confirmed_count(front)
        print(f"front: {len(front)} point(s) {sorted(front['trial'])}; front of the means: "
              f"{len(means)} {sorted(means['trial'])}; {len(kept)} of {len(front)} keep "
              f"their place; {confirmed} confirmed (interval clear of the others), "
              f"{overlapping} overlap another's interval")
        for _, row in front.iterrows():
            print(f"  trial {int(row['trial']):>2}: accuracy {row['accuracy']:.4f}, "
                  f"energy {row['energy_j']:.4g} J, mean {row['energy_j_mean']:.4g} J "
                  f"[{row['energy_j_ci_low']:.4g}, {row['energy_j_ci_high']:.4g}], "
                  f"cv {row['energy_j_std'] / row['energy_j_mean']:.1%}"
                  f"{', overlaps ' + str(row['overlaps']) if row['overlaps'] else ''}")


if __name__ == "__main__":
    main()
