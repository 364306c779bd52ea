"""The replay half of search_efficiency.py: samplers, early stopping, successive halving and
the energy-aware sampler on a recorded table, 30 seeds each, against the issue's targets.

Kept apart from the live benchmark so that each reads in one sitting.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ecotune.pareto import energy_to_reach
from ecotune.spec import load_spec
from ecotune.tabular import Method, read_table, replay, summarize

PLAIN = ("grid", "random", "tpe", "gp", "nsga2", "skopt")
STOPPED = ("grid", "random", "tpe")
#: Bootstrap resamples for the confidence intervals of ratios between methods.
BOOTSTRAP = 4000


def methods(table_size: int, n_trials: int) -> list[Method]:
    """The six samplers; early stopping (+es) and successive halving (+sh) on three; the
    energy-aware skopt option (+cost) and its cost cooling (+cool). Grid search runs the
    whole table."""
    def trials(sampler: str) -> int:
        return table_size if sampler == "grid" else n_trials

    out = [Method(s, s, n_trials=trials(s)) for s in PLAIN]
    out.append(Method("skopt+cost", "skopt", {"cost_objective": "energy_j"},
                      n_trials=n_trials))
    # Cost cooling (CArBO): EI / energy^alpha, alpha from 1 to 0 over the run's trials.
    out.append(Method("skopt+cool", "skopt", {"cost_objective": "energy_j",
                                              "cost_cooling": True,
                                              "cost_budget_trials": n_trials},
                      n_trials=n_trials))
    for s in STOPPED:
        for stopping, tag in (("predict", "es"), ("successive_halving", "sh")):
            out.append(Method(f"{s}+{tag}", s, stopping=stopping, n_trials=trials(s)))
            # "/c": a stopped trial ends complete, its values at the epoch it stopped.
            out.append(Method(f"{s}+{tag}/c", s, stopping=stopping, n_trials=trials(s),
                              early_stopping={"on_stop": "complete"}))
    return out


def _one(job: tuple) -> object:
    table_path, study_path, method, seed = job
    spec = load_spec(study_path).with_overrides(seed=seed)
    import torch

    torch.set_num_threads(1)  # the GP sampler's torch: one thread per process
    return replay(read_table(table_path), spec, [method], repeats=1)[method.label][0]


def run_all(table_path: Path, study_path: Path, chosen: list[Method], repeats: int,
            processes: int) -> tuple[dict, dict]:
    """Runs by label, and wall seconds per label (the sum of its runs' own times)."""
    seed0 = load_spec(study_path).study.seed or 0
    jobs = [(str(table_path), str(study_path), m, seed0 + r) for m in chosen
            for r in range(repeats)]
    runs: dict = {m.label: [] for m in chosen}
    if processes > 1:
        import multiprocessing

        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")
                                 ) as pool:
            results = list(pool.map(_one, jobs))
    else:
        results = [_one(job) for job in jobs]
    for run in results:
        runs[run.label].append(run)
    for group in runs.values():
        group.sort(key=lambda r: r.seed)
    return runs, {label: sum(r.wall_s for r in group) for label, group in runs.items()}


def _bootstrap(a: np.ndarray, b: np.ndarray, statistic, rng) -> tuple[float, float, float]:
    """``statistic(a, b)`` and its 95 % percentile bootstrap interval (a and b resampled
    independently: different methods' runs are not paired)."""
    value = statistic(a, b)
    draws = [statistic(rng.choice(a, len(a)), rng.choice(b, len(b))) for _ in range(BOOTSTRAP)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(value), float(low), float(high)


def _energy_to_95(run) -> float:
    """Search energy to 95 % of the reference hypervolume (NaN: never reached)."""
    return energy_to_reach(run.cumulative_energy_j, run.hypervolume_ratio, 0.95)


def report_targets(runs: dict, rng: np.random.Generator) -> None:
    """Print both targets of the issue, with 95 % intervals, and whether each holds."""
    grid = np.array([_energy_to_95(r) for r in runs["grid"]])
    print("\nTarget 1: the best method reaches 95 % of the reference hypervolume on <= 1/4 "
          "of the energy grid search needs for the same")
    print(f"  grid: {np.mean(grid):.4g} J (mean of {len(grid)} runs)")
    best = None
    for label, group in runs.items():
        energies = np.array([_energy_to_95(r) for r in group])
        if label == "grid" or np.isnan(energies).any():
            if label != "grid":
                print(f"  {label:>11}: {int(np.isnan(energies).sum())} of {len(energies)} "
                      "runs never reached 95 %")
            continue
        ratio = _bootstrap(energies, grid, lambda a, b: a.mean() / b.mean(), rng)
        print(f"  {label:>11}: {energies.mean():.4g} J = {ratio[0]:.3f} x grid's "
              f"(95 % CI {ratio[1]:.3f}-{ratio[2]:.3f})")
        if best is None or ratio[0] < best[1][0]:
            best = (label, ratio)
    if best is not None:
        label, (value, low, high) = best
        verdict = ("holds" if high <= 0.25 else "holds on the mean, not with confidence"
                   if value <= 0.25 else "does not hold")
        print(f"  best: {label}, {value:.3f} x grid's (CI {low:.3f}-{high:.3f}): target "
              f"{verdict} ({'under' if value <= 0.25 else 'over'} 0.25 by "
              f"{abs(0.25 - value):.3f})")
    print("\nTarget 2: early stopping or successive halving saves >= 60 % of search energy "
          "at <= 1 point of hypervolume (same trials per run as the sampler alone)")
    for label, group in runs.items():
        base = label.split("+")[0]  # "tpe+sh/c" is measured against "tpe"
        if "+" not in label or label.endswith(("+cost", "+cool")) or base not in runs:
            continue
        plain = runs[base]
        spent = np.array([r.energy_j.sum() for r in group])
        spent0 = np.array([r.energy_j.sum() for r in plain])
        final = np.array([r.hypervolume_ratio[-1] for r in group])
        final0 = np.array([r.hypervolume_ratio[-1] for r in plain])
        saved = _bootstrap(spent, spent0, lambda a, b: 1 - a.mean() / b.mean(), rng)
        lost = _bootstrap(final, final0, lambda a, b: 100 * (b.mean() - a.mean()), rng)
        holds = saved[0] >= 0.60 and lost[0] <= 1.0
        sure = saved[1] >= 0.60 and lost[2] <= 1.0
        print(f"  {label:>9}: saved {saved[0]:6.1%} (CI {saved[1]:.1%}-{saved[2]:.1%}), lost "
              f"{lost[0]:+.2f} points (CI {lost[1]:+.2f} to {lost[2]:+.2f}): "
              f"{'holds' if sure else 'holds on the mean' if holds else 'does not hold'}")


def main(table_path: Path, study_path: Path, repeats: int, n_trials: int | None,
         processes: int, only: list[str] | None) -> None:
    table = read_table(table_path)
    n = n_trials or len(table.configs)
    chosen = [m for m in methods(len(table.configs), n) if not only or m.label in only]
    print(f"replay of {table_path} ({len(table.configs)} configurations; meter "
          f"{table.header.get('meter')}; recorded on {table.header.get('machine')})")
    print(f"{repeats} seeds per method; {n} trials per run ({len(table.configs)} for grid); "
          f"{processes} process(es)")
    started = time.perf_counter()
    runs, wall = run_all(table_path, study_path, chosen, repeats, processes)
    total_s = time.perf_counter() - started
    budget_j = 0.25 * table.total_energy_j()
    summary = summarize(runs, budget_j)
    print(f"\nwall time {total_s:.1f} s in all; per method, the sum of its runs' times (s):")
    print("  " + ", ".join(f"{k} {v:.1f}" for k, v in wall.items()))
    plain = [label for label in PLAIN if label in wall]
    print(f"  the six plain samplers: {sum(wall[k] for k in plain):.1f} s of run time")
    print(f"\nmeans over seeds with 95 % CIs; ratio = hypervolume / the table's "
          f"{'(reference front: all configurations)'}; budget = {budget_j:.4g} J (1/4 of a "
          "full grid)")
    header = (f"{'method':>11} {'trials':>6} {'search J':>15} {'final ratio':>15} "
              f"{'ratio@budget':>15} {'J to 90 %':>17} {'J to 95 %':>17} {'J to 99 %':>17}")
    print(header)
    def ci(row, key: str, fmt: str = ".3f") -> str:
        mean, half = row[key], row[f"{key}_ci"]
        return "never" if math.isnan(mean) else f"{mean:{fmt}}±{half:.2g}"

    for _, row in summary.iterrows():
        levels = [f"{ci(row, f'energy_to_{v}_j', '.4g')}({row[f'reached_{v}']})"
                  for v in (90, 95, 99)]
        print(f"{row['method']:>11} {row['trials']:>6.0f} {ci(row, 'search_energy_j', '.5g'):>15} "
              f"{ci(row, 'final_ratio'):>15} {ci(row, 'ratio_at_budget'):>15} "
              + " ".join(f"{v:>17}" for v in levels))
    if "grid" in runs:
        report_targets(runs, np.random.default_rng(0))
