"""Recorded tables: recording (resumable, exact), replay (same values as the recorded
study, real samplers, seeds), summaries with confidence intervals, and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest

from ecotune.energy import Measurement, Meter
from ecotune.spec import load_spec
from ecotune.tabular import (
    Method,
    TableError,
    check_fits,
    mean_ci,
    read_table,
    record_table,
    replay,
    summarize,
)
from ecotune.tabular._record import table_spec
from ecotune.tabular._replay import TableObjective
from ecotune.tabular._table import config_key, write_rows
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parent.parent
DIGITS_TABLE = REPO / "benchmarks" / "tables" / "digits_cnn.csv"
DIGITS_STUDY = REPO / "benchmarks" / "tables" / "digits_cnn.toml"


def tiny_grid_spec(lr_grid=(1e-3, 3e-2)) -> dict:
    """A digits mlp over 2 x 2 x 2 = 8 configurations, in well under a second each."""
    return {
        "study": {"name": "tab", "seed": 0},
        "data": {"name": "digits"},
        "model": {"name": "mlp"},
        "training": {"batch_size": 128},
        "energy": {"meter": "cputime"},
        "search_space": {
            "lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True,
                   "grid": list(lr_grid)},
            "width": {"type": "categorical", "choices": [0.25, 0.5]},
            "epochs": {"type": "int", "low": 1, "high": 2},
        },
    }


class _Interrupt:
    """on_trial hook that interrupts the recording after ``n`` trials (as Ctrl-C would)."""

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, 0

    def __call__(self, trial, done, planned) -> None:
        self.seen += 1
        if self.seen >= self.n:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The tiny grid recorded in two sessions (interrupted after 3 trials, then resumed)."""
    path = tmp_path_factory.mktemp("table") / "tiny.csv"
    with pytest.raises(KeyboardInterrupt):
        record_table(tiny_grid_spec(), path, command="first", on_trial=_Interrupt(3))
    first_text = path.read_text()
    session = record_table(tiny_grid_spec(), path, command="second")
    return path, first_text, session


def test_an_interrupted_recording_resumes_where_it_stopped(recorded):
    path, first_text, session = recorded
    # Each trained curve records its 1-epoch configuration too, from its prefix: the
    # first session trained 3 curves (6 configurations), the second the last one.
    assert (session.planned, session.already, len(session.trials), session.derived) == (
        8, 6, 1, 1)
    assert session.in_table == 8
    text = path.read_text()
    assert text.startswith(first_text)  # the first session's rows are kept as written
    table = read_table(path)
    assert len(table.configs) == 8 and not table.incomplete
    assert table.header["command"] == "first"
    assert any(note.startswith("resumed:") for note in table.notes)
    assert table.header["meter"] == "cputime (estimate)"
    # Running once more records nothing and leaves the table as it is.
    again = record_table(tiny_grid_spec(), path)
    assert (again.already, len(again.trials)) == (8, 0)
    assert path.read_text() == text


def test_the_table_holds_the_recorded_trials_exactly(recorded):
    path, _, session = recorded
    table = read_table(path)
    for trial in session.trials:
        record = table.configs[config_key(trial.params, table.knobs)]
        curve = trial.user_attrs["training"]["learning_curve"]
        assert record.state == "COMPLETE"
        assert record.epochs.tolist() == [e["epoch"] for e in curve]
        assert record.val_accuracy.tolist() == [e["val_accuracy"] for e in curve]
        assert record.energy_j.tolist() == [e["energy_j"] for e in curve]
        assert record.elapsed_s.tolist() == [e["elapsed_s"] for e in curve]
        assert record.finals["accuracy"] == trial.values[0]
        assert record.final_energy_j == trial.values[1]
        assert record.finals["test_accuracy"] == trial.user_attrs["test_accuracy"]
        assert record.finals["inference_energy_pj"] == trial.user_attrs["inference"]["asic_pj"]
        assert record.finals["epochs_run"] == len(curve) == trial.params["epochs"]


def test_a_torn_or_partial_trial_is_recorded_again(recorded, tmp_path):
    path, first_text, _ = recorded
    table = read_table(path)
    n_knobs = len(table.knobs)
    lines = first_text.splitlines(keepends=True)
    header = [line for line in lines if line.startswith("#")]
    columns, rows = lines[len(header)], lines[len(header) + 1:]

    def key(line: str) -> str:
        return ",".join(line.split(",")[:n_knobs])

    first = [line for line in rows if key(line) == key(rows[0])]
    assert len(first) == 2  # the first curve: 2 epochs (its 1-epoch prefix follows)
    two_epoch = next(line for line in rows if key(line) != key(rows[0])
                     and key(line).endswith(",2") and key(line) != key(first[0]))
    assert len([line for line in rows if key(line) == key(two_epoch)]) == 2
    # The first curve whole (not its prefix); of the next curve only its first row; then
    # a torn line.
    target = tmp_path / "broken.csv"
    target.write_text("".join(header) + columns + "".join(first) + two_epoch
                      + two_epoch[:len(two_epoch) // 2])
    partial = read_table(target)
    assert len(partial.configs) == 1 and len(partial.incomplete) == 1
    with pytest.raises(KeyboardInterrupt):  # records the next two missing curves only
        record_table(tiny_grid_spec(), target, on_trial=_Interrupt(2))
    resumed = read_table(target)
    assert len(resumed.configs) == 4 and not resumed.incomplete
    text = target.read_text()
    assert text.endswith("\n")
    # The first curve's 1-epoch configuration trained on its own (its longer run was in
    # the table already); the next curve recorded anew, with its prefix.
    one_epoch = (*config_key_of(first[0], n_knobs)[:-1], "1")
    assert resumed.configs[one_epoch].finals["prefix_of"] is None
    again = [line for line in text.splitlines() if line and not line.startswith("#")
             and key(line) == key(two_epoch)]
    assert len(again) == 2 and [line.split(",")[n_knobs] for line in again] == ["1", "2"]
    derived = (*config_key_of(two_epoch, n_knobs)[:-1], "1")
    assert resumed.configs[derived].finals["prefix_of"] == 2


def config_key_of(line: str, n_knobs: int) -> tuple[str, ...]:
    return tuple(line.split(",")[:n_knobs])


def test_a_table_from_another_spec_is_refused_and_left_untouched(recorded, tmp_path):
    path, _, _ = recorded
    before = path.read_bytes()
    with pytest.raises(TableError, match="another study spec"):
        record_table(tiny_grid_spec(lr_grid=(1e-3, 1e-2)), path)
    assert path.read_bytes() == before


def test_a_float_knob_without_a_grid_cannot_be_recorded(tmp_path):
    spec = tiny_grid_spec()
    del spec["search_space"]["lr"]["grid"]
    with pytest.raises(TableError, match="search_space.lr: a recorded table needs a grid"):
        record_table(spec, tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists()


def test_replay_gives_the_recorded_study_its_own_values(recorded):
    path, _, session = recorded
    table = read_table(path)
    by_config = {config_key(t.params, table.knobs): tuple(t.values) for t in session.trials}
    for key, record in table.configs.items():  # the first session's trials, from the table
        by_config.setdefault(key, (record.finals["accuracy"], record.final_energy_j))
    runs = replay(table, tiny_grid_spec(), [Method("grid", "grid"), Method("tpe", "tpe")],
                  repeats=2)
    for group in runs.values():
        for run in group:
            assert len(run.values) == 8
    grid_values = sorted(v for run in runs["grid"] for v in run.values)
    assert grid_values == sorted(list(by_config.values()) * 2)  # every config, exactly once
    recorded_values = set(by_config.values())
    assert all(v in recorded_values for run in runs["tpe"] for v in run.values)


def test_repeats_use_different_seeds_and_the_interval_comes_from_them():
    table = read_table(DIGITS_TABLE)
    runs = replay(table, DIGITS_STUDY, [Method("random", "random")], repeats=4, n_trials=6)
    group = runs["random"]
    assert [r.seed for r in group] == [0, 1, 2, 3]
    assert len({tuple(r.values) for r in group}) > 1  # different seeds, different searches
    finals = [r.hypervolume_ratio[-1] for r in group]
    row = summarize(runs, budget_j=table.total_energy_j()).iloc[0]
    expected = mean_ci(finals)
    assert row["final_ratio"] == pytest.approx(expected.mean)
    assert row["final_ratio_ci"] == pytest.approx(expected.half_width)
    # The t interval by hand: t(0.975, 3) = 3.182446...
    assert expected.half_width == pytest.approx(
        3.182446305284263 * np.std(finals, ddof=1) / 2.0)


def test_the_hypervolume_ratio_of_a_full_grid_is_one_and_grows_monotonically():
    table = read_table(DIGITS_TABLE)
    run = replay(table, DIGITS_STUDY, [Method("grid", "grid")], repeats=1)["grid"][0]
    assert len(run.states) == len(table.configs)
    assert run.hypervolume_ratio[-1] == pytest.approx(1.0)
    assert (np.diff(run.hypervolume_ratio) >= -1e-12).all()
    assert run.energy_j.sum() == pytest.approx(table.total_energy_j())


def test_the_replays_hypervolume_history_ignores_an_infeasible_trial():
    """The replay's copy of the hypervolume history once counted every complete trial;
    it is now pareto's, by the feasibility rule the report and compare use."""
    from ecotune.tabular._replay import _history

    study = optuna.create_study(directions=["maximize", "minimize"])
    for values, constraints in [([0.5, 4.0], {}), ([0.9, 1.0], {"trial_energy_j": 2.0}),
                                ([0.8, 6.0], {})]:
        study.add_trial(optuna.trial.create_trial(values=values, constraints=constraints,
                                                  user_attrs={"energy_j": values[1]}))
    energy, ratio, states, values = _history(study, [0.0, 10.0], 4.2, [True, False])
    assert energy.tolist() == [4.0, 1.0, 6.0]
    assert ratio.tolist() == pytest.approx([3.0 / 4.2, 3.0 / 4.2, 1.0])  # not 9.0 / 4.2
    assert states == ["COMPLETE"] * 3 and values[1] == (0.9, 1.0)


def test_the_summary_reports_every_level_the_log_difference_and_ratios_to_baselines():
    from ecotune.pareto import energy_ratio, energy_to_reach, log_hv_difference
    from ecotune.tabular import LEVELS, mean_curves

    table = read_table(DIGITS_TABLE)
    runs = replay(table, DIGITS_STUDY, [Method("grid", "grid"), Method("random", "random"),
                                        Method("tpe", "tpe")], repeats=3, n_trials=12)
    summary = summarize(runs, budget_j=0.25 * table.total_energy_j()).set_index("method")
    assert [f"reached_{t}" in summary for t in ("90", "95", "99", "99.5")] == [True] * 4
    assert LEVELS == (0.90, 0.95, 0.99, 0.995)
    tpe, random = runs["tpe"], runs["random"]
    finals = log_hv_difference([r.hypervolume_ratio[-1] for r in tpe])
    assert summary.loc["tpe", "final_log_hv_difference"] == pytest.approx(finals.mean())
    # The ratio columns are pareto.energy_ratio of the per-run energies, nothing else.
    reach = [[energy_to_reach(r.cumulative_energy_j, r.hypervolume_ratio, 0.99) for r in g]
             for g in (tpe, random)]
    expected = energy_ratio(reach[0], [r.energy_j.sum() for r in tpe], reach[1],
                            [r.energy_j.sum() for r in random])
    got = summary.loc["tpe", ["energy_to_99_vs_random", "energy_to_99_vs_random_low",
                              "energy_to_99_vs_random_high", "energy_to_99_vs_random_bound"]]
    assert list(got.iloc[:3]) == pytest.approx(list(expected)[:3], nan_ok=True)
    assert got.iloc[3] == expected.bound
    assert summary.loc["grid", "energy_to_99_vs_grid"] == 1.0
    assert summary.loc["random", "energy_to_99.5_vs_random_bound"] == "="
    # The log curve is the log difference of the ratio curve, point by point.
    ratio = mean_curves({"tpe": tpe[:1]}, points=50)
    log = mean_curves({"tpe": tpe[:1]}, points=50, metric="log_hv_difference")
    assert log["mean"].tolist() == pytest.approx(log_hv_difference(ratio["mean"]).tolist())


def test_mean_ci_with_one_value_has_no_interval():
    m = mean_ci([0.5, math.nan])
    assert (m.mean, m.n) == (0.5, 1) and math.isnan(m.half_width)


def _table_with(tmp_path: Path, curves: dict[int, tuple[list[float], list[float]]],
                tail_j: float = 0.5) -> Path:
    rows = []
    for x, (accuracy, energy) in curves.items():
        for e, (acc, joules) in enumerate(zip(accuracy, energy), start=1):
            rows.append({"batch_size": x, "epoch": e, "val_accuracy": acc, "energy_j": joules,
                         "elapsed_s": float(e), "state": "COMPLETE",
                         "accuracy": accuracy[-1], "final_energy_j": energy[-1] + tail_j,
                         "duration_s": float(len(energy)), "epochs_run": len(energy)})
    path = tmp_path / "hand.csv"
    spec = table_spec(load_spec(_hand_spec(len(curves))))
    write_rows(path, ["batch_size"], rows, header={"spec": json.dumps(spec)})
    return path


def _hand_spec(n: int, **early_stopping) -> dict:
    return {"study": {"name": "hand", "seed": 0},
            "early_stopping": {"enabled": True, "method": "successive_halving",
                               "min_epochs": 1, "reduction_factor": 2, **early_stopping},
            "search_space": {"batch_size": {"type": "int", "low": 1, "high": n}}}


#: Hand-built curves (accuracy, cumulative energy per epoch) of six trials, four epochs
#: each, arriving in this order. Rungs (min_epochs 1, reduction factor 2): epochs 1, 2, 4.
HAND = {
    1: ([0.50, 0.60, 0.70, 0.80], [1.0, 2.0, 3.0, 4.0]),   # A: first at every rung
    2: ([0.40, 0.50, 0.60, 0.70], [2.0, 4.0, 6.0, 8.0]),   # B: dominated by A at rung 1
    3: ([0.60, 0.65, 0.90, 0.95], [1.5, 3.0, 4.5, 6.0]),   # C: on the front, ends of it
    4: ([0.30, 0.35, 0.40, 0.45], [0.5, 1.0, 1.5, 2.0]),   # D: cheapest, an end
    5: ([0.55, 0.55, 0.60, 0.60], [1.2, 2.4, 3.6, 4.8]),   # E: front, but most crowded
    6: ([0.70, 0.50, 0.60, 0.70], [0.4, 2.5, 3.0, 3.5]),   # F: dominated by A at rung 2
}


def test_successive_halving_stops_exactly_the_trials_its_rule_says(tmp_path):
    # Worked by hand from the rule (non-dominated rank, then crowding distance; the top
    # max(1, n // 2) continue; ties favour the trial decided):
    # rung 1: B (rank 1 behind A) stops; E (rank 0, but D, C infinite and A 1.53 > 0.83
    # ahead: 3 >= 5 // 2) stops; F dominates every point and continues.
    # rung 2: F (0.5, 2.5) is dominated by A (0.6, 2.0): rank 1 behind A, C, D: stops.
    expected_stop = {1: None, 2: 1, 3: None, 4: None, 5: 1, 6: 2}
    table = read_table(_table_with(tmp_path, HAND))
    objective = TableObjective(table, load_spec(_hand_spec(len(HAND))), "successive_halving")
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "energy_j"])
    for x in HAND:
        study.enqueue_trial({"batch_size": x})
    study.optimize(objective, n_trials=len(HAND))
    for trial in study.trials:
        x = trial.params["batch_size"]
        stop = expected_stop[x]
        assert trial.user_attrs.get("replay_stopped_at_epoch") == stop, x
        accuracy, energy = HAND[x]
        if stop is None:
            assert trial.state == optuna.trial.TrialState.COMPLETE
            assert trial.values == [accuracy[-1], energy[-1] + 0.5]
        else:
            assert trial.state == optuna.trial.TrialState.PRUNED
            # A stopped trial costs its epochs so far plus the recorded tail.
            assert trial.user_attrs["energy_j"] == energy[stop - 1] + 0.5
        rungs = trial.user_attrs["successive_halving"]
        assert sorted(rungs, key=int) == [r for r in ("1", "2", "4")
                                          if stop is None or int(r) <= stop]


def test_stopped_trials_end_complete_when_on_stop_says_so(tmp_path):
    table = read_table(_table_with(tmp_path, HAND))
    objective = TableObjective(table, load_spec(_hand_spec(6, on_stop="complete")),
                               "successive_halving")
    study = optuna.create_study(directions=["maximize", "minimize"])
    for x in HAND:
        study.enqueue_trial({"batch_size": x})
    study.optimize(objective, n_trials=len(HAND))
    b = next(t for t in study.trials if t.params["batch_size"] == 2)
    assert b.state == optuna.trial.TrialState.COMPLETE and b.values == [0.40, 2.5]


def test_hyperband_brackets_stop_the_same_trials_in_replay_and_live(tmp_path):
    """Brackets 2 over HAND: trials 0, 2, 4 (A, C, E) in bracket 0 (rungs 1, 2, 4), trials
    1, 3, 5 (B, D, F) in bracket 1 (rungs 2, 4), each ranked in its own bracket. Worked by
    hand: rung 1 of bracket 0: C ties A and continues, E (the middle of A, C) stops;
    rung 2: A and C tie; bracket 1, rung 2: B alone, D ties B, F dominates B: none stops.
    A live own loop (``ecotune.measure``, a meter that reads HAND's energies) stops
    exactly the same trials at the same epochs."""
    import ecotune
    from ecotune.energy import Measurement
    from tests.test_own_loop import StepMeter

    expected_stop = {1: None, 2: None, 3: None, 4: None, 5: 1, 6: None}
    table = read_table(_table_with(tmp_path, HAND))
    spec = load_spec(_hand_spec(len(HAND), brackets=2))
    objective = TableObjective(table, spec, "successive_halving")
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "energy_j"])
    for x in HAND:
        study.enqueue_trial({"batch_size": x})
    study.optimize(objective, n_trials=len(HAND))
    assert {t.params["batch_size"]: t.user_attrs.get("replay_stopped_at_epoch")
            for t in study.trials} == expected_stop

    class CurveMeter(StepMeter):  # each lap reads the next of HAND's cumulative energies
        def __init__(self, energies: list[float]) -> None:
            super().__init__()
            self.energies = energies

        def _reading(self) -> Measurement:
            energy_j = self.energies[self._reads - 1] if self._reads else 0.0
            return Measurement(float(self._reads), energy_j, energy_j, None, None, None,
                               self.name, True)

    live = ecotune.create_study(storage=None, sampler="random", seed=0,
                                early_stopping=spec.early_stopping.model_dump())
    stopped_live = {}
    for x, (accuracies, energies) in HAND.items():
        trial = live.ask()
        with ecotune.measure(trial, CurveMeter(energies), epochs=len(accuracies)) as m:
            for epoch, accuracy in enumerate(accuracies, start=1):
                m.report(epoch, accuracy)
                if m.should_stop():
                    stopped_live[x] = epoch
                    break
        live.tell(trial, [m.accuracy, m.energy_j])
        assert trial.number == x - 1
    assert {x: stopped_live.get(x) for x in HAND} == expected_stop


def test_cli_replays_the_digits_table_and_writes_the_comparison(tmp_path):
    result = run_cli("compare", str(DIGITS_STUDY), "--replay", str(DIGITS_TABLE),
                     "--samplers", "random,tpe", "--repeats", "3", "--out", str(tmp_path),
                     "--no-png")
    assert result.returncode == 0, result.stderr
    assert "J to 95 %" in result.stdout and "J to 99.5 %" in result.stdout
    assert "99 % vs random" in result.stdout and "final log HV diff" in result.stdout
    import pandas as pd

    table = pd.read_csv(tmp_path / "compare.csv")
    assert table["method"].tolist() == ["random", "tpe"] and (table["runs"] == 3).all()
    curves = pd.read_csv(tmp_path / "compare-curves.csv")
    assert (curves["low"] <= curves["mean"] + 1e-12).all()
    assert (tmp_path / "compare.html").stat().st_size > 100_000
    assert (tmp_path / "compare-log-hv.html").stat().st_size > 100_000
    log = pd.read_csv(tmp_path / "compare-log-hv-curves.csv")
    assert (log["mean"] <= 0).all() and (log["mean"] >= -4).all()


@pytest.mark.parametrize("args, message", [
    (["--record", "t.csv", "--replay", "t.csv"], "cannot be used together"),
    (["--replay", "missing.csv"], "cannot read the table"),
    (["--replay", str(DIGITS_TABLE), "--samplers", "tpe,nope"], "unknown sampler 'nope'"),
    ([], "--n-trials is required"),
])
def test_cli_bad_tabular_input_exits_2(tmp_path, args, message, capsys):
    """In-process (the same main() the command runs); the next test runs a real one."""
    from ecotune.cli import main

    assert main(["compare", str(DIGITS_STUDY), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "t.csv").exists()


def test_cli_refuses_to_replay_a_table_with_another_study(tmp_path, capsys):
    """In-process (the same main(); the test above runs the replay as a real process)."""
    from ecotune.cli import main

    study = tmp_path / "other.toml"
    study.write_text(DIGITS_STUDY.read_text().replace("batch_size = 64", "batch_size = 32"))
    assert main(["compare", str(study), "--replay", str(DIGITS_TABLE)]) == 2
    err = capsys.readouterr().err
    assert "recorded with another training section" in err
    assert len(err.strip().splitlines()) == 1, err


def test_a_table_recorded_before_the_training_seed_setting_still_resumes_and_fits(
        recorded, tmp_path):
    path, _, _ = recorded
    old = tmp_path / "old.csv"
    lines = path.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("# spec: "):
            described = json.loads(line.removeprefix("# spec: "))
            assert described["training"].pop("seed") == 0
            lines[i] = f"# spec: {json.dumps(described, sort_keys=True)}\n"
    old.write_text("".join(lines))
    check_fits(read_table(old), load_spec(tiny_grid_spec()))
    again = record_table(tiny_grid_spec(), old)
    assert (again.already, len(again.trials)) == (8, 0)


def test_a_derived_row_is_what_a_real_shorter_run_records(tmp_path):
    """Each curve trains once, to the largest ``epochs``; the shorter values are read from
    its prefix, and equal a real shorter run's bit for bit (accuracy, curve, test accuracy,
    inference estimate; energy is a new measurement, so only close)."""
    spec = tiny_grid_spec(lr_grid=(3e-2,))
    spec["training"]["eat_lambda"] = 0.5  # activation sparsity: the inference estimate moves
    spec["search_space"]["epochs"] = {"type": "int", "low": 1, "high": 3, "grid": [1, 3]}
    session = record_table(spec, tmp_path / "derived.csv")
    assert (len(session.trials), session.derived, session.planned) == (2, 2, 4)
    derived = read_table(tmp_path / "derived.csv")
    spec["search_space"]["epochs"]["grid"] = [1]  # the real 1-epoch runs, on their own
    record_table(spec, tmp_path / "real.csv")
    real = read_table(tmp_path / "real.csv")
    assert len(real.configs) == 2
    for key, short in real.configs.items():
        mine = derived.configs[key]
        longer = derived.configs[(*key[:-1], "3")]
        assert short.finals["prefix_of"] is None and mine.finals["prefix_of"] == 3
        assert longer.finals["prefix_of"] is None and mine.epochs.tolist() == [1]
        assert mine.val_accuracy.tolist() == short.val_accuracy.tolist()
        for name in ("accuracy", "test_accuracy", "inference_energy_pj", "epochs_run"):
            assert mine.finals[name] == short.finals[name], name
        assert mine.val_accuracy[0] == longer.val_accuracy[0]
        assert mine.energy_j[0] == longer.energy_j[0]
        assert 0 < mine.energy_j[0] <= mine.final_energy_j < longer.final_energy_j
        assert mine.evaluation_energy_j > 0 and mine.finals["meter"] == "cputime"
    # The 3-epoch weights differ from the 1-epoch ones: the test is not vacuous.
    assert any(derived.configs[(*k[:-1], "3")].finals["inference_energy_pj"]
               != derived.configs[k].finals["inference_energy_pj"] for k in real.configs)


def test_settings_that_plan_by_epochs_record_each_epochs_value_on_its_own(tmp_path):
    from ecotune.tabular._record import derives_prefixes

    spec = tiny_grid_spec(lr_grid=(3e-2,))
    spec["search_space"]["width"] = {"type": "categorical", "choices": [0.25]}
    spec["training"]["early_stopping_patience"] = 1
    assert not derives_prefixes(load_spec(spec), {"lr": 3e-2, "width": 0.25, "epochs": 2})
    session = record_table(spec, tmp_path / "own.csv")
    assert (len(session.trials), session.derived) == (2, 0)
    table = read_table(tmp_path / "own.csv")
    assert all(r.finals["prefix_of"] is None for r in table.configs.values())


def test_a_table_with_older_columns_replays_but_is_not_resumed(recorded, tmp_path):
    digits = read_table(DIGITS_TABLE)  # recorded before evaluation_energy_j and prefix_of
    assert "prefix_of" not in digits.columns and len(digits.configs) == 27
    assert all(r.finals["prefix_of"] is None for r in digits.configs.values())
    path, _, _ = recorded
    old = tmp_path / "old.csv"  # the tiny table as an older ecotune wrote it: no prefix_of
    lines = [line.rsplit(",", 1)[0] + "\n" if not line.startswith("#") else line
             for line in path.read_text().splitlines(keepends=True)]
    old.write_text("".join(lines))
    assert len(read_table(old).configs) == 8
    assert record_table(tiny_grid_spec(), old).recorded == 0  # complete: nothing to do
    old.write_text("".join(line for line in lines
                           if line.startswith("#") or not line.startswith("0.03,0.5,")))
    before = old.read_bytes()
    with pytest.raises(TableError, match="older ecotune"):
        record_table(tiny_grid_spec(), old)
    assert old.read_bytes() == before


class _CurveMeter(Meter):
    """A meter that reads a recorded learning curve: lap ``k`` is the curve's cumulative
    energy at epoch ``k``; the closing reading adds the recorded tail (exact numbers)."""

    name = "curve"
    devices = ("cpu",)

    def __init__(self, energy_j: list[float], tail_j: float) -> None:
        super().__init__()
        self.energy_j, self.tail_j = energy_j, tail_j

    def _start(self) -> None:
        self._laps = 0

    def _at(self, energy_j: float) -> Measurement:
        return Measurement(float(self._laps), energy_j, energy_j, None, None, None,
                           self.name, True)

    def _lap(self, exact: bool = False) -> Measurement:
        self._laps += 1
        return self._at(self.energy_j[self._laps - 1])

    def _stop(self) -> Measurement:
        return self._at((self.energy_j[self._laps - 1] if self._laps else 0.0) + self.tail_j)


#: Three recorded trials over (lr, freeze_at_epoch), 4 epochs configured, arriving in this
#: order: (accuracy, cumulative energy) per epoch run. Worked from the predictor (min_epochs
#: 1, margin 0.01), front A = (0.8, 4.5 J) once A completes:
#: - B freezes from epoch 2: after epoch 1 its rest is priced at 0.77 of 1.3 J an epoch,
#:   4.303 J predicted, and A's 4.5 J is not below it: B trains on. Priced unfrozen (the
#:   base config's plan) it would be 5.2 J and stop.
#: - C ran 3 of its 4 configured epochs (patience ended it). After epoch 1, 4 epochs (the
#:   last frozen) are 1.5 x 3.77 = 5.655 J: A beats it, C stops. Planned for the 3 epochs
#:   run it would be 4.5 J, not beaten, and C would train on.
RUNTIME_CURVES = {
    (0.01, 4): ([0.5, 0.6, 0.7, 0.8], [1.0, 2.0, 3.0, 4.0]),   # A
    (0.01, 2): ([0.4, 0.5, 0.6, 0.7], [1.3, 2.3, 3.3, 4.3]),   # B
    (0.1, 4): ([0.3, 0.35, 0.35], [1.5, 3.0, 4.5]),            # C
}
RUNTIME_EXPECTED_STOP = {(0.01, 4): None, (0.01, 2): None, (0.1, 4): 1}


def _runtime_spec() -> dict:
    return {"study": {"name": "runtime", "seed": 0}, "training": {"epochs": 4},
            "early_stopping": {"enabled": True, "method": "predict", "min_epochs": 1,
                               "margin": 0.01},
            "search_space": {
                "lr": {"type": "float", "low": 0.01, "high": 0.1, "grid": [0.01, 0.1]},
                "freeze_at_epoch": {"type": "int", "low": 2, "high": 4}}}


def test_the_replay_of_a_predict_stopped_study_matches_the_live_run(tmp_path):
    """Searched runtime decisions and the configured epochs plan the replay's stopping
    as they plan the live trial's (the measurement window of an own loop fed the same
    curves and energies)."""
    import ecotune
    from ecotune.search import suggest_knobs

    tail_j = 0.5
    rows = []
    for (lr, freeze), (accuracy, energy) in RUNTIME_CURVES.items():
        for e, (acc, joules) in enumerate(zip(accuracy, energy), start=1):
            rows.append({"lr": lr, "freeze_at_epoch": freeze, "epoch": e,
                         "val_accuracy": acc, "energy_j": joules, "elapsed_s": float(e),
                         "state": "COMPLETE", "accuracy": accuracy[-1],
                         "final_energy_j": energy[-1] + tail_j,
                         "duration_s": float(len(energy)), "epochs_run": len(energy)})
    spec = load_spec(_runtime_spec())
    path = tmp_path / "runtime.csv"
    write_rows(path, ["lr", "freeze_at_epoch"], rows,
               header={"spec": json.dumps(table_spec(spec))})

    def live(trial: optuna.Trial) -> tuple[float, float]:
        knobs = suggest_knobs(trial, spec)
        training = spec._with_knobs(knobs)[1]  # what the built-in trainer's plan reads
        accuracy, energy = RUNTIME_CURVES[(knobs["lr"], knobs["freeze_at_epoch"])]
        with ecotune.measure(trial, meter=_CurveMeter(energy, tail_j),
                             epochs=training.epochs, freeze_at_epoch=training.freeze_at_epoch,
                             low_precision_at_epoch=training.low_precision_at_epoch) as m:
            for epoch, acc in enumerate(accuracy, start=1):
                m.report(epoch, acc)
                if m.should_stop():
                    raise optuna.TrialPruned(m.stop_reason)
        return m.accuracy, m.energy_j

    live_study = ecotune.create_study("live", storage=None, sampler="random", seed=0,
                                      early_stopping=_runtime_spec()["early_stopping"])
    replayed = ecotune.create_study("replayed", storage=None, sampler="random", seed=0)
    for study in (live_study, replayed):
        for lr, freeze in RUNTIME_CURVES:
            study.enqueue_trial({"lr": lr, "freeze_at_epoch": freeze})
    live_study.optimize(live, n_trials=len(RUNTIME_CURVES))
    replayed.optimize(TableObjective(read_table(path), spec, "predict"),
                      n_trials=len(RUNTIME_CURVES))
    for mine, theirs in zip(live_study.trials, replayed.trials, strict=True):
        key = (mine.params["lr"], mine.params["freeze_at_epoch"])
        stop = RUNTIME_EXPECTED_STOP[key]
        assert mine.user_attrs["early_stopping"]["stopped_at_epoch"] == stop, key
        assert theirs.user_attrs.get("replay_stopped_at_epoch") == stop, key
        assert (theirs.state, theirs.values) == (mine.state, mine.values), key
        assert theirs.user_attrs["energy_j"] == mine.user_attrs["energy_j"], key
