"""The replay half of search_efficiency.py: samplers, early stopping, successive halving and
the energy-aware sampler on a recorded table, 30 seeds each, against the issue's targets.

Every figure comes from :func:`ecotune.tabular.summarize` (hypervolume history and energy
to a level from :mod:`ecotune.pareto`, as ``ecotune compare --replay`` prints them): the
search energy to 90/95/99/99.5 % of the reference hypervolume, the log hypervolume
difference ``log10(1 - HV / HV_ref)``, and ratios of search energy to random search's and
grid search's, each as mean and 95 % CI over seeds. Beside them: the predictor's errors
on the table's own curves, and what the replay costs against bare Optuna running the same
samplers on a dictionary-lookup objective. The output ends with one line per target of
issue 19, ``T1 <value> (goal ...) holds|misses``.

Kept apart from the live benchmark so that each reads in one sitting.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ecotune.pareto import EnergyRatio, level_tag
from ecotune.rules import rung_epochs
from ecotune.spec import load_spec
from ecotune.tabular import LEVELS, Method, read_table, replay, summarize

PLAIN = ("grid", "random", "tpe", "gp", "nsga2", "skopt")
STOPPED = ("grid", "random", "tpe")
#: Samplers that learn from successive halving's rungs: run with +sh and +hb only, and
#: measured against the plain sampler they are without rungs (T2).
HALVING_ONLY = ("rung_tpe",)
PLAIN_OF = {"rung_tpe": "tpe"}
#: Samplers whose runs take tens of seconds each (a GP fitted per trial): ``--slow-seeds``.
SLOW = ("gp", "skopt", "skopt+cost", "skopt+cool")
#: Bootstrap resamples for the confidence intervals of savings between methods.
BOOTSTRAP = 4000
#: Seeds per sampler timed in bare Optuna, against the replay's runs of the same seeds (the
#: first ones): a run of random search or NSGA-II takes a tenth of a second, and a shared
#: machine's load moves single runs by 10-20 % (10 seeds still gave +-10 % for NSGA-II
#: on a load of 20); the slow samplers get fewer.
COST_SEEDS = 30
SLOW_COST_SEEDS = 3
#: The most the replay may add to bare Optuna's time (issue 19).
COST_GOAL = 0.10
#: Fractions of training seen at which the predictor's errors are printed.
SEEN = (0.25, 0.5, 0.75)
#: Reguero et al. (2024): mean relative errors of the predicted final accuracy and energy.
PUBLISHED_ERRORS = (0.084, 0.143)


def methods(table_size: int, n_trials: int, max_epochs: int, first_rung: int,
            reduction_factor: int, settings: dict | None = None,
            halving: dict | None = None) -> list[Method]:
    """The six samplers; early stopping (+es), successive halving (+sh) and Hyperband
    (+hb: successive halving over every bracket from ``first_rung`` up to ``max_epochs``)
    on three, and +sh and +hb with ``rung_tpe`` (TPE fit on the rungs' points), each also
    with stopped trials completed (/c); the energy-aware skopt option
    (+cost) and its cost cooling (+cool). Grid search runs the whole table. ``settings``
    (e.g. ``min_epochs``) replace the study file's ``[early_stopping]`` ones, and
    ``halving`` those of +sh and +hb after them (e.g. their first rung)."""
    def trials(sampler: str) -> int:
        return table_size if sampler == "grid" else n_trials

    settings = dict(settings or {})
    halving = {**settings, **(halving or {})}
    brackets = max(1, len(rung_epochs(first_rung, reduction_factor, max_epochs)))

    out = [Method(s, s, n_trials=trials(s)) for s in PLAIN]
    out.append(Method("skopt+cost", "skopt", {"cost_objective": "energy_j"},
                      n_trials=n_trials))
    # Cost cooling (CArBO): EI / energy^alpha, alpha from 1 to 0 over the run's trials.
    out.append(Method("skopt+cool", "skopt", {"cost_objective": "energy_j",
                                              "cost_cooling": True,
                                              "cost_budget_trials": n_trials},
                      n_trials=n_trials))
    for s in (*STOPPED, *HALVING_ONLY):
        for stopping, tag, extra in (("predict", "es", settings),
                                     ("successive_halving", "sh", halving),
                                     ("successive_halving", "hb",
                                      {**halving, "brackets": brackets})):
            if s in HALVING_ONLY and stopping != "successive_halving":
                continue
            out.append(Method(f"{s}+{tag}", s, stopping=stopping, n_trials=trials(s),
                              early_stopping=extra))
            # "/c": a stopped trial ends complete, its values at the epoch it stopped.
            out.append(Method(f"{s}+{tag}/c", s, stopping=stopping, n_trials=trials(s),
                              early_stopping={**extra, "on_stop": "complete"}))
    return out


def _one(job: tuple) -> object:
    kind, table_path, study_path, method, seed = job
    spec = load_spec(study_path).with_overrides(seed=seed)
    import torch

    torch.set_num_threads(1)  # the GP sampler's torch: one thread per process
    table = read_table(table_path)
    if method.sampler not in _WARM:
        # Untimed, once per process and sampler, a whole run of each side: the first
        # pays imports and first-use set-up (ecotune's storage and study modules on its
        # first study alone: ~0.3 s, +17 % on 30 random-search runs of 0.06 s) that are
        # no cost of a replayed run. Up to 100 trials: enough to reach every code path.
        warm = dataclasses.replace(method, n_trials=min(method.n_trials or 100, 100))
        _bare_seconds(table, spec, warm)
        replay(table, spec, [warm], repeats=1, n_trials=100)
        _WARM.add(method.sampler)
    # The objects this process keeps (earlier runs' results, the table) out of the cyclic
    # collector's scans, so that neither side's time grows with how many runs came before.
    gc.collect()
    gc.freeze()
    if kind == "bare":
        return method.label, seed, _bare_seconds(table, spec, method)
    return replay(table, spec, [method], repeats=1)[method.label][0]


#: Samplers this process has run once untimed (see _one).
_WARM: set[str] = set()


def _bare_seconds(table, spec, method: Method) -> tuple[float, float, list]:
    """Seconds bare Optuna takes to run ``method``'s sampler, seed and trials on an
    objective that reads each configuration's objective values from a dictionary (each
    sampled value read as the nearest grid value, in log space for a ``log`` knob, as
    the replay reads it and as a tabular benchmark must): wall time and this process's
    CPU time, over the same span as a replayed run's (the study made, the trials run;
    the table's dictionary built before, as the replay's lookup is); and the trials'
    values, which must be the replay's (the same sampling, not merely the same sampler).
    """
    import optuna

    from ecotune.objectives import OBJECTIVES
    from ecotune.samplers import make_sampler
    from ecotune.search import suggest_knobs

    objectives = spec.study.objectives
    columns = {"accuracy": "accuracy", "energy_j": "final_energy_j"}
    values = {tuple(float(c) for c in key): tuple(float(r.finals[columns.get(o, o)])
                                                  for o in objectives)
              for key, r in table.configs.items() if not r.failed}
    grids = [np.array(sorted({float(key[i]) for key in table.configs}))
             for i in range(len(table.knobs))]
    logs = [bool(getattr(spec.search_space[k], "log", False)) and bool((g > 0).all())
            for g, k in zip(grids, table.knobs)]
    positions = [np.log(g) if log else g for g, log in zip(grids, logs)]

    def objective(trial):
        knobs = suggest_knobs(trial, spec)
        key = tuple(float(g[np.abs(p - (math.log(knobs[k]) if log else float(knobs[k])))
                            .argmin()])
                    for g, p, log, k in zip(grids, positions, logs, table.knobs))
        if key not in values:
            raise RuntimeError("a failed configuration")
        return values[key]

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    grid = spec.grid() if method.sampler == "grid" else None
    started, started_cpu = time.perf_counter(), time.process_time()
    study = optuna.create_study(
        directions=[OBJECTIVES[o].direction for o in objectives],
        sampler=make_sampler(method.sampler, spec.study.seed, grid, dict(method.options)))
    study.optimize(objective, n_trials=method.n_trials, catch=(RuntimeError,))
    wall_s, cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
    return wall_s, cpu_s, [tuple(t.values) if t.values is not None else None
                           for t in study.get_trials(deepcopy=False)]


def run_all(table_path: Path, study_path: Path, chosen: list[Method], seeds: dict[str, int],
            processes: int) -> tuple[dict, dict]:
    """Replayed runs by label (``seeds[label]`` each), and the bare-Optuna seconds per
    plain sampler and seed (the first :func:`cost_seeds` seeds)."""
    seed0 = load_spec(study_path).study.seed or 0
    # Each bare run next to the replayed run of the same sampler and seed, so that both
    # meet the same load of a shared machine; after it for even seeds, before it for odd
    # ones, so that neither side always finds the other's caches warm.
    jobs = [(kind, str(table_path), str(study_path), m, seed0 + r) for m in chosen
            for r in range(seeds[m.label])
            for kind in ((("replay", "bare") if r % 2 == 0 else ("bare", "replay"))
                         if m.label in PLAIN and r < cost_seeds(m.label) else ("replay",))]
    if processes > 1:
        import multiprocessing

        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")
                                 ) as pool:
            results = list(pool.map(_one, jobs))
    else:
        results = [_one(job) for job in jobs]
    runs: dict = {m.label: [] for m in chosen}
    bare: dict = {}
    for result in results:
        if isinstance(result, tuple):
            label, seed, seconds = result
            bare.setdefault(label, {})[seed] = seconds
        else:
            runs[result.label].append(result)
    for group in runs.values():
        group.sort(key=lambda r: r.seed)
    return runs, bare


def cost_seeds(label: str) -> int:
    """How many of a plain sampler's seeds are timed in bare Optuna too."""
    return SLOW_COST_SEEDS if label in SLOW else COST_SEEDS


def _bootstrap(a: np.ndarray, b: np.ndarray, statistic, rng) -> tuple[float, float, float]:
    """``statistic(a, b)`` and its 95 % percentile bootstrap interval (a and b resampled
    independently: different methods' runs are not paired)."""
    value = statistic(a, b)
    draws = [statistic(rng.choice(a, len(a)), rng.choice(b, len(b))) for _ in range(BOOTSTRAP)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(value), float(low), float(high)


def _ratio(row, level: float, base: str) -> EnergyRatio:
    key = f"energy_to_{level_tag(level)}_vs_{base}"
    if key not in row:
        return EnergyRatio(math.nan, math.nan, math.nan, "")
    return EnergyRatio(row[key], row[f"{key}_low"], row[f"{key}_high"], row[f"{key}_bound"])


def print_summary(summary, budget_j: float) -> None:
    def ci(row, key: str, fmt: str = ".3f") -> str:
        mean, half = row[key], row[f"{key}_ci"]
        if math.isnan(mean):
            return "never"
        return f"{mean:{fmt}}" if math.isnan(half) else f"{mean:{fmt}}±{half:.2g}"

    print(f"\nmeans over seeds with 95 % CIs; ratio = hypervolume / the table's (reference "
          f"front: all configurations); logdiff = log10(1 - ratio), floored at -4; budget = "
          f"{budget_j:.4g} J (1/4 of a full grid)")
    print(f"{'method':>11} {'seeds':>5} {'search J':>14} {'final ratio':>13} "
          f"{'final logdiff':>13} {'logdiff@budget':>14}")
    for _, row in summary.iterrows():
        print(f"{row['method']:>11} {row['runs']:>5} {ci(row, 'search_energy_j', '.5g'):>14} "
              f"{ci(row, 'final_ratio'):>13} {ci(row, 'final_log_hv_difference', '.2f'):>13} "
              f"{ci(row, 'log_hv_difference_at_budget', '.2f'):>14}")
    print("\nsearch energy (J) to first reach a level of the reference hypervolume: mean±CI "
          "over the runs that reached it (runs that did)")
    print(f"{'method':>11} " + " ".join(f"{'J to ' + level_tag(v) + ' %':>18}" for v in LEVELS))
    for _, row in summary.iterrows():
        cells = [f"{ci(row, f'energy_to_{level_tag(v)}_j', '.4g')}"
                 f"({row[f'reached_{level_tag(v)}']})" for v in LEVELS]
        print(f"{row['method']:>11} " + " ".join(f"{c:>18}" for c in cells))
    bases = [b for b in ("random", "grid") if f"energy_to_99_vs_{b}" in summary]
    if bases:
        print("\nsearch energy to 99 % and 99.5 % / the baseline's (ratio of means, 95 % "
              "bootstrap CI; <=, >=: a bound, runs that never reached the level count their "
              "total search energy; n/a: neither side reached it in every run)")
        keys = [(v, b) for v in (0.99, 0.995) for b in bases]
        print(f"{'method':>11} " + " ".join(f"{f'{level_tag(v)} % vs {b}':>22}"
                                            for v, b in keys))
        for _, row in summary.iterrows():
            print(f"{row['method']:>11} " + " ".join(f"{_ratio(row, v, b).text():>22}"
                                                     for v, b in keys))


def _longest_curves(table) -> list:
    """The complete configurations whose curve is no prefix of another's: where ``epochs``
    is a knob (shorter ``epochs`` read from the prefix of the longest run), the one with
    the most epochs per setting of the other knobs; else every complete configuration."""
    records = [r for r in table.configs.values() if not r.failed]
    if "epochs" not in table.knobs:
        return records
    i = table.knobs.index("epochs")
    longest: dict = {}
    for key, record in table.configs.items():
        if record.failed:
            continue
        rest = key[:i] + key[i + 1:]
        if rest not in longest or len(record.epochs) > len(longest[rest].epochs):
            longest[rest] = record
    return list(longest.values())


def predictor_errors(table, spec, records=None) -> dict[float, tuple[float, float, int]]:
    """Per fraction of :data:`SEEN`, the mean relative error of the early stopper's
    predicted final validation accuracy and training energy (``predict_final`` fed the
    first ``floor(fraction x planned)`` epochs of the curve), over ``records`` (default:
    every complete configuration), and how many."""
    from ecotune.epochs import EpochRecord
    from ecotune.rules import predict_final

    training = spec.training
    records = records if records is not None else list(table.configs.values())
    out = {}
    for fraction in SEEN:
        accuracy, energy = [], []
        for record in records:
            planned = len(record.epochs)
            seen = max(1, int(planned * fraction))  # never more than the fraction
            if record.failed or planned < 2 or seen >= planned:
                continue
            curve = [EpochRecord(int(e), None, float(a), float(s), float(j))
                     for e, a, j, s in zip(record.epochs[:seen], record.val_accuracy[:seen],
                                           record.energy_j[:seen], record.elapsed_s[:seen])]
            p = predict_final(curve, planned, training.freeze_at_epoch,
                              training.low_precision_at_epoch)
            actual_accuracy, actual_energy = record.val_accuracy[-1], record.energy_j[-1]
            accuracy.append(abs(p.accuracy - actual_accuracy) / actual_accuracy)
            energy.append(abs(p.energy_j - actual_energy) / actual_energy)
        out[fraction] = (float(np.mean(accuracy)) if accuracy else math.nan,
                         float(np.mean(energy)) if energy else math.nan, len(accuracy))
    return out


def print_predictor_errors(table, spec) -> dict:
    """The predictor's errors over the longest curves (T4's) and over every configuration;
    returns the first."""
    longest = _longest_curves(table)
    planned = sorted({len(r.epochs) for r in longest})
    print("\npredictor errors on the table's curves (mean relative error of the predicted "
          "final validation accuracy and training energy; Reguero et al.: "
          f"{PUBLISHED_ERRORS[0]:.1%} and {PUBLISHED_ERRORS[1]:.1%})")
    errors = predictor_errors(table, spec, longest)
    every = predictor_errors(table, spec)
    print(f"  over the {len(longest)} distinct curves at their longest "
          f"({'/'.join(map(str, planned))} epochs), the T4 figure; and over every "
          "configuration (a short one sees less: 1 epoch of 3 at a half)")
    for fraction, (accuracy, energy, count) in errors.items():
        a, e, n = every[fraction]
        print(f"  {fraction:.0%} of training seen: accuracy {accuracy:.1%}, energy "
              f"{energy:.1%} ({count} curves); every configuration: accuracy {a:.1%}, "
              f"energy {e:.1%} ({n})")
    return errors


class Cost(NamedTuple):
    """What the replay adds to bare Optuna: over all plain samplers timed (sum of their
    per-run means), in CPU time and in wall time, and per sampler in CPU time."""

    cpu: float
    wall: float
    by_sampler: dict[str, float]  # added CPU time, per sampler

    @property
    def holds(self) -> bool:
        # The goal holds for the replay as a whole and for every sampler on its own: a
        # slow sampler's seconds must not hide what a fast one pays.
        return self.cpu <= COST_GOAL and all(v <= COST_GOAL for v in self.by_sampler.values())


def print_cost(runs: dict, bare: dict) -> Cost:
    """Seconds per run, replay against bare Optuna, per plain sampler, in CPU and wall
    time; the replay's overhead over all of them (sum of per-sampler mean seconds)."""
    print("\nreplay cost: mean seconds per run over the first seeds (up to "
          f"{COST_SEEDS}; {SLOW_COST_SEEDS} for {', '.join(s for s in SLOW if s in PLAIN)}), "
          "the replay (ecotune study, table objective, hypervolume history) against bare "
          "Optuna with the same "
          "sampler, seed and trials on a dictionary-lookup objective, in the same processes, "
          "each pair run back to back; CPU: this process's CPU time (what other work on a "
          "shared machine inflates least), wall: elapsed")
    print(f"{'sampler':>11} {'seeds':>5} {'replay CPU s':>12} {'bare CPU s':>10} {'added':>8}   "
          f"{'replay wall s':>13} {'bare wall s':>11} {'added':>8}  same trials")
    totals = np.zeros(4)  # replay CPU, bare CPU, replay wall, bare wall
    by_sampler = {}
    for label in PLAIN:
        if label not in bare:
            continue
        seeds = sorted(bare[label])
        mine = [r for r in runs[label] if r.seed in seeds]
        row = np.array([np.mean([r.cpu_s for r in mine]),
                        np.mean([bare[label][s][1] for s in seeds]),
                        np.mean([r.wall_s for r in mine]),
                        np.mean([bare[label][s][0] for s in seeds])])
        totals += row
        by_sampler[label] = row[0] / row[1] - 1
        same = sum(r.values == bare[label][r.seed][2] for r in mine)
        print(f"{label:>11} {len(seeds):>5} {row[0]:>12.3f} {row[1]:>10.3f} "
              f"{row[0] / row[1] - 1:>+8.1%}   "
              f"{row[2]:>13.3f} {row[3]:>11.3f} {row[2] / row[3] - 1:>+8.1%}  "
              f"{same} of {len(mine)}")
    cpu = totals[0] / totals[1] - 1 if totals[1] > 0 else math.nan
    wall = totals[2] / totals[3] - 1 if totals[3] > 0 else math.nan
    print(f"{'all':>11} {'':>5} {totals[0]:>12.3f} {totals[1]:>10.3f} {cpu:>+8.1%}   "
          f"{totals[2]:>13.3f} {totals[3]:>11.3f} {wall:>+8.1%}")
    return Cost(float(cpu), float(wall), by_sampler)


def multi_fidelity(runs: dict, rng: np.random.Generator) -> list[tuple]:
    """Per multi-fidelity method (+es, +sh, +hb, with or without /c) whose plain sampler
    ran too: (label, search energy saved against that sampler's runs of the same trials,
    final hypervolume ratio lost in points, the method's mean final ratio); saved and lost
    as (value, 95 % bootstrap low, high)."""
    out = []
    for label, group in runs.items():
        base, _, rule = label.partition("+")  # "tpe+sh/c" is measured against "tpe"
        base = PLAIN_OF.get(base, base)  # "rung_tpe+sh/c" too: it is TPE without rungs
        if rule.split("/")[0] not in ("es", "sh", "hb") or base not in runs:
            continue
        spent = np.array([r.energy_j.sum() for r in group])
        spent0 = np.array([r.energy_j.sum() for r in runs[base]])
        final = np.array([r.hypervolume_ratio[-1] for r in group])
        final0 = np.array([r.hypervolume_ratio[-1] for r in runs[base]])
        saved = _bootstrap(spent, spent0, lambda a, b: 1 - a.mean() / b.mean(), rng)
        lost = _bootstrap(final, final0, lambda a, b: 100 * (b.mean() - a.mean()), rng)
        out.append((label, saved, lost, float(final.mean())))
    return out


def _holds_t2(row: tuple) -> bool:
    # A saving counts only where the final ratio is at most 1 point lower; a method that
    # spends more (saved < 0) cannot hold.
    _, saved, lost, _ = row
    return saved[0] >= 0.60 and lost[0] <= 1.0


def print_multi_fidelity(rows: list[tuple]) -> None:
    if not rows:
        return
    print("\nmulti-fidelity against the same sampler without it, same trials per run: search "
          "energy saved and final hypervolume ratio lost (points; negative: gained), 95 % "
          "bootstrap CIs; a final ratio above 1 is a front beyond the table's, from stopped "
          "trials completed at epochs its grid lacks (/c)")
    print(f"{'method':>11} {'saved':>22} {'points lost':>24} {'final ratio':>11}  T2")
    for label, saved, lost, final in rows:
        print(f"{label:>11} {saved[0]:>6.1%} ({saved[1]:.1%}-{saved[2]:.1%})"
              f" {lost[0]:>+6.2f} ({lost[1]:+.2f} to {lost[2]:+.2f}) {final:>11.3f}  "
              f"{'holds' if _holds_t2((label, saved, lost, final)) else 'misses'}")


def target_lines(summary, runs: dict, mf: list[tuple], errors: dict, added: Cost,
                 table_path: Path, peer: dict | None = None) -> list[str]:
    """One line per target of issue 19: ``T1 <value> (goal ...) holds|misses``."""
    lines = []
    rows = {row["method"]: row for _, row in summary.iterrows()}
    # T1: the best ecotune method (not grid, not random) to 99 %, against random and grid.
    goal = "goal <= 0.33 x random's and <= 0.50 x grid's energy to 99 %"
    candidates = [(row["energy_to_99_j"], label) for label, row in rows.items()
                  if label not in ("grid", "random") and row["reached_99"] == row["runs"]]
    if "random" not in rows or "grid" not in rows:
        lines.append(f"T1 pending: replay random and grid too ({goal})")
    elif not candidates:
        # Name the method that came closest (the largest share of runs reaching 99 %, then
        # the least energy): its ratios count each run that never got there at its total.
        near = [(row["reached_99"] / row["runs"], -row["energy_to_99_j"], label)
                for label, row in rows.items()
                if label not in ("grid", "random") and row["reached_99"] > 0]
        closest = ""
        if near:
            label = max(near)[2]
            row = rows[label]
            closest = (f"; closest {label}, in {row['reached_99']} of {row['runs']} runs: "
                       f"{_ratio(row, 0.99, 'random').text()} x random's, "
                       f"{_ratio(row, 0.99, 'grid').text()} x grid's")
        lines.append(f"T1 no method but grid reaches 99 % in every run{closest} ({goal}) "
                     "misses")
    else:
        label = min(candidates)[1]
        vs_random, vs_grid = _ratio(rows[label], 0.99, "random"), _ratio(rows[label], 0.99,
                                                                          "grid")
        holds = vs_random.value <= 1 / 3 and vs_grid.value <= 0.5
        lines.append(f"T1 {label}: {vs_random.text()} x random's, {vs_grid.text()} x grid's "
                     f"({goal}) {'holds' if holds else 'misses'}")
    # T2: the best multi-fidelity method that holds, else the one that loses least.
    goal = "goal >= 60 % saved at <= 1 point of final hypervolume ratio lost"
    if not mf:
        lines.append(f"T2 pending: no +es, +sh or +hb method with its plain sampler ({goal})")
    else:
        label, saved, lost, _ = max(mf, key=lambda m: (_holds_t2(m), m[1][0] if m[2][0] <= 1
                                                       else -m[2][0]))
        lines.append(f"T2 {label}: saved {saved[0]:.1%} (CI {saved[1]:.1%}-{saved[2]:.1%}) "
                     f"at {lost[0]:+.2f} points (CI {lost[1]:+.2f} to {lost[2]:+.2f}) "
                     f"({goal}) {'holds' if _holds_t2((label, saved, lost, 0)) else 'misses'}")
    lines.append(_t3_line(runs, peer, table_path))
    accuracy, energy, n = errors.get(0.5, (math.nan, math.nan, 0))
    if n == 0:
        lines.append("T4 pending (no configuration of the table trains 2 epochs or more)")
    else:
        holds = accuracy <= PUBLISHED_ERRORS[0] and energy <= PUBLISHED_ERRORS[1]
        lines.append(f"T4 accuracy {accuracy:.1%}, energy {energy:.1%} at half of training "
                     f"seen, {n} distinct curves (goal <= {PUBLISHED_ERRORS[0]:.1%} and <= "
                     f"{PUBLISHED_ERRORS[1]:.1%}) {'holds' if holds else 'misses'}")
    if not added.by_sampler:
        lines.append(f"cost pending: no plain sampler timed (goal <= {COST_GOAL:+.1%})")
    else:
        worst = max(added.by_sampler, key=added.by_sampler.__getitem__)
        lines.append(f"cost the replay adds {added.cpu:+.1%} CPU time ({added.wall:+.1%} wall) "
                     f"to bare Optuna over {', '.join(added.by_sampler)}; most to {worst}, "
                     f"{added.by_sampler[worst]:+.1%} (goal <= {COST_GOAL:+.1%} over all and "
                     f"per sampler) {'holds' if added.holds else 'misses'}")
    return lines


def _t3_line(runs: dict, peer: dict | None, table_path: Path) -> str:
    """T3 from ``benchmarks/peer_moasha.py --json``'s figures (its ``best`` MOASHA
    variant: per run the search energy to 99 %, null where never, and the total), when
    given for this very table (``table_sha256``); else pending. Ecotune's side is its
    method with the least mean energy to 99 % (runs that never got there count their
    total, as :func:`ecotune.pareto.energy_ratio` censors them), grid and random search
    excepted, as for T1."""
    import hashlib

    from ecotune.pareto import energy_ratio, energy_to_reach

    goal = "goal: ecotune's best / MOASHA's energy to 99 % <= 1.0"
    if peer is None:
        return f"T3 pending (no --peer JSON from benchmarks/peer_moasha.py given; {goal})"
    digest = hashlib.sha256(Path(table_path).read_bytes()).hexdigest()
    if peer.get("table_sha256") not in (None, digest):
        return f"T3 pending (the --peer JSON is for another table; {goal})"
    best = peer.get("best", peer)
    theirs = np.array([math.nan if v is None else float(v) for v in best["energy_to_99_j"]])
    their_totals = np.array(best["search_energy_j"], dtype=float)
    mine = {}
    for label, group in runs.items():
        reach = np.array([energy_to_reach(r.cumulative_energy_j, r.hypervolume_ratio, 0.99)
                          for r in group])
        totals = np.array([r.energy_j.sum() for r in group])
        mine[label] = (float(np.where(np.isnan(reach), totals, reach).mean()), reach, totals)
    # As for T1: grid and random search are the baselines, not ecotune's methods.
    pool = [k for k in mine if k not in ("grid", "random")]
    if not pool:
        return f"T3 pending: no ecotune method but grid and random was replayed ({goal})"
    label = min(pool, key=lambda k: mine[k][0])
    ratio = energy_ratio(mine[label][1], mine[label][2], theirs, their_totals)
    holds = ratio.bound in ("=", "<=") and ratio.value <= 1.0
    name = best.get("label", peer.get("method", "MOASHA"))
    return (f"T3 {ratio.text()} ({label}'s energy to 99 % / {name}'s, MOASHA reached it in "
            f"{int(np.isfinite(theirs).sum())} of {len(theirs)} runs) ({goal}) "
            f"{'holds' if holds else 'misses'}")


def main(table_path: Path, study_path: Path, repeats: int, n_trials: int | None,
         processes: int, only: list[str] | None, slow_seeds: int | None = None,
         settings: dict | None = None, peer_path: Path | None = None,
         slow_samplers: list[str] | None = None, halving: dict | None = None) -> None:
    table = read_table(table_path)
    spec = load_spec(study_path)
    n = n_trials or len(table.configs)
    es = spec.with_settings(early_stopping={**(settings or {}), **(halving or {}),
                                           "method": "successive_halving"}
                            ).early_stopping
    max_epochs = max(len(r.epochs) for r in table.configs.values())
    chosen = [m for m in methods(len(table.configs), n, max_epochs, es.min_epochs,
                                 es.reduction_factor, settings, halving)
              if not only or m.label in only]
    es_min = spec.with_settings(early_stopping=settings or {}).early_stopping.min_epochs
    print(f"+es: min_epochs {es_min}; +sh, +hb: first rung {es.min_epochs}, reduction factor "
          f"{es.reduction_factor}, rung order {es.rung_order}"
          f" (+hb: {len(rung_epochs(es.min_epochs, es.reduction_factor, max_epochs))} "
          "brackets)")
    slow_set = set(SLOW) | {m.label for m in chosen if m.sampler in (slow_samplers or [])}
    seeds = {m.label: (slow_seeds or repeats) if m.label in slow_set else repeats
             for m in chosen}
    print(f"replay of {table_path} ({len(table.configs)} configurations; meter "
          f"{table.header.get('meter')}; recorded on {table.header.get('machine')})")
    slow = [m.label for m in chosen if m.label in slow_set]
    print(f"{repeats} seeds per method"
          + (f" ({slow_seeds} for {', '.join(slow)})" if slow_seeds and slow else "")
          + f"; {n} trials per run ({len(table.configs)} for grid); {processes} process(es)")
    started = time.perf_counter()
    runs, bare = run_all(table_path, study_path, chosen, seeds, processes)
    total_s = time.perf_counter() - started
    wall = {label: sum(r.wall_s for r in group) for label, group in runs.items()}
    print(f"\nwall time {total_s:.1f} s in all (bare-Optuna timing included); per method, "
          "the sum of its runs' times (s):")
    print("  " + ", ".join(f"{k} {v:.1f}" for k, v in wall.items()))
    budget_j = 0.25 * table.total_energy_j()
    summary = summarize(runs, budget_j)
    print_summary(summary, budget_j)
    errors = print_predictor_errors(table, spec)
    added = print_cost(runs, bare)
    mf = multi_fidelity(runs, np.random.default_rng(0))
    print_multi_fidelity(mf)
    peer = None
    if peer_path is not None:
        import json

        peer = json.loads(Path(peer_path).read_text())
    print()
    for line in target_lines(summary, runs, mf, errors, added, table_path, peer):
        print(line)
