"""``ecotune compare --record`` and ``--replay``: recorded (tabular) benchmarks."""

from __future__ import annotations

import argparse
import shlex
import sys

from rich.console import Console

from ecotune.cli._common import BadInput
from ecotune.names import ATTR_ENERGY, SAMPLERS
from ecotune.spec import SpecError, load_spec


def _command_line() -> str:
    return shlex.join(["ecotune", *sys.argv[1:]])


def _record(args: argparse.Namespace, console: Console) -> int:
    import optuna

    from ecotune.tabular import TableError, grid_configs, record_table

    try:
        spec = load_spec(args.study_file)
        planned = len(grid_configs(spec))
    except (SpecError, TableError) as err:
        raise BadInput(str(err)) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    console.print(f"recording {planned} configuration(s) of {spec.study.name} into "
                  f"{args.record}", highlight=False)

    def done(trial: optuna.trial.FrozenTrial, n: int, total: int) -> None:
        params = ", ".join(f"{k}={v}" for k, v in trial.params.items())
        energy = trial.user_attrs.get(ATTR_ENERGY)
        console.print(f"  {n}/{total} {trial.state.name.lower()}: {params}; "
                      f"{energy if energy is None else f'{energy:.3g} J'}", highlight=False)

    try:
        session = record_table(spec, args.record, command=_command_line(), on_trial=done)
    except TableError as err:
        raise BadInput(str(err)) from None
    console.print(f"{args.record}: {session.already + session.recorded} of "
                  f"{session.planned} configurations recorded ({session.recorded} in this "
                  f"session: {len(session.trials)} trained, {session.derived} read from a "
                  f"longer run's prefix; {session.wall_s:.1f} s)", highlight=False)
    return 0


def _replay(args: argparse.Namespace, console: Console) -> int:
    from ecotune.tabular import TableError, methods_for, read_table, replay

    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown or not samplers:
        raise BadInput(f"unknown sampler {unknown[0]!r}; expected some of {list(SAMPLERS)}"
                       if unknown else "no sampler to compare")
    if len(set(samplers)) != len(samplers):
        raise BadInput(f"a sampler is listed twice: {samplers}")
    if args.repeats < 1 or (args.n_trials is not None and args.n_trials < 1):
        raise BadInput("--repeats and --n-trials must be >= 1")
    try:
        spec = load_spec(args.study_file)
        table = read_table(args.replay)
        methods = methods_for(spec, samplers)
        from ecotune.tabular import check_fits

        check_fits(table, spec)
    except (SpecError, TableError) as err:
        raise BadInput(str(err)) from None
    n_trials = args.n_trials or len(table.configs)
    budget_j = BUDGET_FRACTION * table.total_energy_j()
    console.print(f"replaying {', '.join(m.label for m in methods)} on {args.replay} "
                  f"({len(table.configs)} configurations, meter {table.header.get('meter')}): "
                  f"{args.repeats} run(s) of {n_trials} trial(s) each", highlight=False)

    def done(run) -> None:
        if run.seed - (spec.study.seed or 0) == args.repeats - 1:
            console.print(f"  {run.label}: {args.repeats} run(s), last {run.wall_s:.2f} s",
                          highlight=False)

    try:
        runs = replay(table, spec, methods, repeats=args.repeats, n_trials=n_trials,
                      on_run=done)
    except (TableError, ValueError) as err:
        raise BadInput(str(err)) from None
    return _write_replay(args, console, spec, table, runs, budget_j)


#: The search energy after which the replay reports the hypervolume ratio, as a fraction
#: of what running every configuration once (grid search) costs.
BUDGET_FRACTION = 0.25


def _ci(mean: float, half: float, digits: str = ".3g") -> str:
    if mean != mean:
        return "never"
    if half != half:
        return f"{mean:{digits}}"
    return f"{mean:{digits}} ± {0.0 if half <= 1e-9 * abs(mean) else half:.2g}"


#: The levels whose search energy is set against random and grid search's in the output.
RATIO_LEVELS = (0.99, 0.995)


def _write_replay(args, console, spec, table, runs, budget_j: float) -> int:
    import pandas as pd
    from rich.table import Table

    from ecotune.cli._common import REPORT_ROOT, _print_paths
    from ecotune.pareto import BASELINES, level_tag
    from ecotune.report import png_export_available, safe_name
    from ecotune.report.export import write_figure
    from ecotune.tabular import (
        LEVELS,
        log_hv_difference_figure,
        mean_curves,
        replay_figure,
        summarize,
    )

    summary = summarize(runs, budget_j)
    shown = Table(title=f"replay of {args.replay}: means over seeds ± 95 % CI; ratio = "
                        "hypervolume / the table's; log HV diff = log10(1 - ratio); budget = "
                        f"{budget_j:.4g} J ({BUDGET_FRACTION:.0%} of a full grid)")
    for column in ("method", "runs", "search energy (J)", "final ratio", "ratio at budget",
                   "final log HV diff", "log HV diff at budget", "s per run"):
        shown.add_column(column, justify="right")
    for _, row in summary.iterrows():
        shown.add_row(row["method"], str(row["runs"]),
                      _ci(row["search_energy_j"], row["search_energy_j_ci"], ".4g"),
                      _ci(row["final_ratio"], row["final_ratio_ci"]),
                      _ci(row["ratio_at_budget"], row["ratio_at_budget_ci"]),
                      _ci(row["final_log_hv_difference"], row["final_log_hv_difference_ci"]),
                      _ci(row["log_hv_difference_at_budget"],
                          row["log_hv_difference_at_budget_ci"]),
                      f"{row['wall_s_per_run']:.2f}")
    console.print(shown)
    reach = Table(title="search energy (J) to first reach a level of the reference "
                        "hypervolume: mean ± 95 % CI over the runs that reached it (runs)")
    reach.add_column("method", justify="right")
    for level in LEVELS:
        reach.add_column(f"J to {level_tag(level)} %", justify="right")
    for _, row in summary.iterrows():
        reach.add_row(row["method"], *[
            f"{_ci(row[key], row[key + '_ci'], '.4g')} ({row[f'reached_{level_tag(level)}']})"
            for level in LEVELS for key in [f"energy_to_{level_tag(level)}_j"]])
    console.print(reach)
    _print_ratios(summary, console, [b for b in BASELINES if b in runs])
    out = args.out or REPORT_ROOT / safe_name(f"{spec.study.name}-replay")
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / "compare.csv", "curves": out / "compare-curves.csv",
             "log curves": out / "compare-log-hv-curves.csv",
             "runs": out / "compare-runs.csv"}
    summary.to_csv(paths["table"], index=False)
    curves = mean_curves(runs)
    curves.to_csv(paths["curves"], index=False)
    log_curves = mean_curves(runs, metric="log_hv_difference")
    log_curves.to_csv(paths["log curves"], index=False)
    pd.DataFrame([{"method": r.label, "seed": r.seed, "trial": i, "state": state,
                   "energy_j": e, "cumulative_energy_j": c, "hypervolume_ratio": h}
                  for group in runs.values() for r in group
                  for i, (state, e, c, h) in enumerate(zip(
                      r.states, r.energy_j, r.cumulative_energy_j, r.hypervolume_ratio))]
                 ).to_csv(paths["runs"], index=False)
    title = f"replay of {args.replay.name}, {args.repeats} seed(s) per method"
    png = False if args.no_png else png_export_available()
    paths.update(write_figure(replay_figure(curves, f"{spec.study.name}: {title}"), out,
                              "compare", png))
    paths.update({f"log {kind}": path for kind, path in write_figure(
        log_hv_difference_figure(log_curves, f"{spec.study.name}: log hypervolume "
                                             f"difference, {title}"),
        out, "compare-log-hv", png).items()})
    _print_paths(paths, console)
    return 0


def _print_ratios(summary, console: Console, baselines: list[str],
                  label: str = "method") -> None:
    """Search energy to 99 and 99.5 % against random and grid search's (those that ran),
    from the ``energy_to_<level>_vs_<baseline>`` columns of a summary whose rows are
    named in column ``label``."""
    from rich.table import Table

    from ecotune.pareto import EnergyRatio, level_tag

    if not baselines:
        console.print("(add random or grid to --samplers for the ratios of search energy "
                      "to 99 % and 99.5 % against them)", highlight=False)
        return
    shown = Table(title="search energy to a level / the baseline's (ratio of means, 95 % "
                        "bootstrap CI; <=, >=: a bound, some runs never reached it and "
                        "count their total search energy)")
    shown.add_column(label, justify="right")
    keys = [(level, base) for level in RATIO_LEVELS for base in baselines]
    for level, base in keys:
        shown.add_column(f"to {level_tag(level)} % vs {base}", justify="right")
    for _, row in summary.iterrows():
        cells = [row[label]]
        for level, base in keys:
            key = f"energy_to_{level_tag(level)}_vs_{base}"
            cells.append(EnergyRatio(row[key], row[f"{key}_low"], row[f"{key}_high"],
                                     row[f"{key}_bound"]).text())
        shown.add_row(*cells)
    console.print(shown)
