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
    console.print(f"{args.record}: {session.already + len(session.trials)} of "
                  f"{session.planned} configurations recorded ({len(session.trials)} in this "
                  f"session, {session.wall_s:.1f} s)", highlight=False)
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


def _write_replay(args, console, spec, table, runs, budget_j: float) -> int:
    import pandas as pd
    from rich.table import Table

    from ecotune.cli._common import REPORT_ROOT, _print_paths
    from ecotune.report import png_export_available, safe_name
    from ecotune.report.export import write_figure
    from ecotune.tabular import LEVELS, mean_curves, replay_figure, summarize

    summary = summarize(runs, budget_j)
    shown = Table(title=f"replay of {args.replay}: means over seeds ± 95 % CI; ratio = "
                        "hypervolume / the table's; budget = "
                        f"{budget_j:.4g} J ({BUDGET_FRACTION:.0%} of a full grid)")
    columns = ["method", "runs", "search energy (J)", "final ratio", "ratio at budget",
               *[f"J to {round(v * 100)} % (runs)" for v in LEVELS], "s per run"]
    for column in columns:
        shown.add_column(column, justify="right")
    for _, row in summary.iterrows():
        cells = [row["method"], str(row["runs"]),
                 _ci(row["search_energy_j"], row["search_energy_j_ci"], ".4g"),
                 _ci(row["final_ratio"], row["final_ratio_ci"]),
                 _ci(row["ratio_at_budget"], row["ratio_at_budget_ci"])]
        for level in LEVELS:
            key = f"energy_to_{round(level * 100)}_j"
            cells.append(f"{_ci(row[key], row[key + '_ci'], '.4g')} "
                         f"({row[f'reached_{round(level * 100)}']})")
        cells.append(f"{row['wall_s_per_run']:.2f}")
        shown.add_row(*cells)
    console.print(shown)
    out = args.out or REPORT_ROOT / safe_name(f"{spec.study.name}-replay")
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / "compare.csv", "curves": out / "compare-curves.csv",
             "runs": out / "compare-runs.csv"}
    summary.to_csv(paths["table"], index=False)
    curves = mean_curves(runs)
    curves.to_csv(paths["curves"], index=False)
    pd.DataFrame([{"method": r.label, "seed": r.seed, "trial": i, "state": state,
                   "energy_j": e, "cumulative_energy_j": c, "hypervolume_ratio": h}
                  for group in runs.values() for r in group
                  for i, (state, e, c, h) in enumerate(zip(
                      r.states, r.energy_j, r.cumulative_energy_j, r.hypervolume_ratio))]
                 ).to_csv(paths["runs"], index=False)
    figure = replay_figure(curves, f"{spec.study.name}: replay of {args.replay.name}, "
                                   f"{args.repeats} seed(s) per method")
    png = False if args.no_png else png_export_available()
    paths.update(write_figure(figure, out, "compare", png))
    _print_paths(paths, console)
    return 0
