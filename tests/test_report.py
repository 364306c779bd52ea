"""Report data (hypervolume, learning curves, parameter effects) tested thoroughly;
drawing and files smoke-tested."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import optuna
import pandas as pd
import plotly.io
import pytest

from ecotune.pareto import energy_to_reach, hypervolume
from ecotune.report import (
    hypervolume_figure,
    hypervolume_history,
    learning_curves,
    learning_curves_figure,
    parameter_effects,
    parameter_effects_figure,
    reference_point,
    report_figures,
    write_report,
)

State = optuna.trial.TrialState


def _brute_force_hypervolume(points, reference, maximize) -> int:
    """Count unit cells of the integer grid between the points and the reference."""
    costs = [[-v if mx else v for v, mx in zip(p, maximize)] for p in points]
    ref = [-v if mx else v for v, mx in zip(reference, maximize)]
    low = [min([c[i] for c in costs] + [ref[i]]) for i in range(len(ref))]
    count = 0
    for cell in itertools.product(*(range(lo, r) for lo, r in zip(low, ref))):
        # The unit cell [cell, cell + 1) is dominated when some point is <= its corner.
        if any(all(c[i] <= cell[i] for i in range(len(ref))) for c in costs):
            count += 1
    return count


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("maximize", [[True, False], [False, False, True],
                                      [False, True, False, False]])
def test_hypervolume_matches_grid_counting(seed: int, maximize: list[bool]) -> None:
    rng = random.Random(seed)
    m = len(maximize)
    n = rng.randint(0, 9 if m < 4 else 6)
    # Small integer coordinates: ties, duplicates and points beyond the reference occur.
    points = [[rng.randint(0, 6) for _ in range(m)] for _ in range(n)]
    reference = [(-1 if mx else 6) for mx in maximize]
    expected = _brute_force_hypervolume(points, reference, maximize)
    assert hypervolume(points, reference, maximize) == pytest.approx(expected)


def test_hypervolume_edge_cases() -> None:
    assert hypervolume([], [0.0, 1.0], [True, False]) == 0.0
    # A point equal to the reference in one objective adds nothing.
    assert hypervolume([[0.5, 1.0]], [0.0, 1.0], [True, False]) == 0.0
    assert hypervolume([[2.0]], [5.0], [False]) == 3.0
    assert hypervolume([[np.nan, 1.0], [0.5, 0.5]], [0.0, 1.0], [True, False]) == 0.25
    with pytest.raises(ValueError, match="reference must have 2 values"):
        hypervolume([[1.0, 1.0]], [1.0], [True, False])
    with pytest.raises(ValueError, match="reference must be finite"):
        hypervolume([[1.0, 1.0]], [np.inf, 1.0], [True, False])


def test_reference_point_is_the_worst_value_plus_a_margin_with_accuracy_zero() -> None:
    points = [[0.9, 10.0, 3.0], [0.5, 2.0, 7.0], [0.7, np.inf, 5.0]]  # inf row left out
    assert reference_point(points, ["accuracy", "energy_j", "f1"],
                           [True, False, True]) == pytest.approx([0.0, 10.8, 2.6])
    # One point: 10 % of its own size; a 0 with nothing to scale by: 0.1.
    assert reference_point([[0.5, 4.0, 0.0]], ["accuracy", "energy_j", "x"],
                           [True, False, False]) == pytest.approx([0.0, 4.4, 0.1])
    # A trial at accuracy 0 still adds hypervolume: the reference goes below it.
    assert reference_point([[0.0, 1.0], [0.5, 3.0]], ["accuracy", "energy_j"],
                           [True, False]) == pytest.approx([-0.05, 3.2])
    with pytest.raises(ValueError, match="at least one point"):
        reference_point([], ["accuracy"], [True])


def _study(trials: list[dict]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "energy_j"])
    width = optuna.distributions.FloatDistribution(0.25, 2.0)
    lr = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    for spec in trials:
        state = spec.get("state", State.COMPLETE)
        # constraints= goes through FrozenTrial.set_constraint: the keys Optuna 5 records.
        study.add_trial(optuna.trial.create_trial(
            state=state, values=spec.get("values") if state == State.COMPLETE else None,
            params={"width": spec.get("width", 1.0), "lr": 1e-3},
            distributions={"width": width, "lr": lr},
            user_attrs=spec.get("attrs", {}), constraints=spec.get("constraints")))
    return study


def test_hypervolume_history_counts_the_energy_of_every_finished_trial() -> None:
    study = _study([
        {"values": [0.5, 4.0], "attrs": {"energy_j": 4.0}},
        {"state": State.FAIL, "attrs": {"energy_j": 2.5}},
        {"state": State.PRUNED, "attrs": {"energy_j": 1.5}},
        {"values": [0.8, 6.0], "attrs": {"energy_j": 6.0}},
        {"values": [0.99, 0.5], "constraints": {"trial_energy_j": 1.0},
         "attrs": {"energy_j": 0.5}},
        {"state": State.FAIL},  # no energy recorded: adds 0, shown as NaN
        {"values": [0.6, 1.0]},  # no attribute: the energy_j objective is used
    ])
    history = hypervolume_history(study)
    assert history["trial"].tolist() == list(range(7))
    assert history["cumulative_energy_j"].tolist() == [4.0, 6.5, 8.0, 14.0, 14.5, 14.5, 15.5]
    assert np.isnan(history["energy_j"][5])
    # Reference: accuracy 0, energy 6 (worst of the complete feasible trials) + 10 % of
    # the range 1..6. The infeasible trial (0.99, 0.5) would dominate everything: it adds
    # nothing; the extreme trial (0.8, 6.0) adds its share.
    ref_j = 6.0 + 0.5
    assert history["hypervolume"].tolist() == pytest.approx(
        [0.5 * (ref_j - 4), 0.5 * (ref_j - 4), 0.5 * (ref_j - 4),
         0.5 * (ref_j - 4) + 0.3 * (ref_j - 6), 1.4, 1.4,
         0.6 * (ref_j - 1) + 0.2 * (ref_j - 6)])
    other = hypervolume_history(study, reference=[0.0, 10.0])
    assert other["hypervolume"].iloc[-1] == pytest.approx(0.6 * 9 + 0.2 * 4)
    assert other["hypervolume"].tolist() == pytest.approx(
        hypervolume_history(study, reference=np.array([0.0, 10.0]))["hypervolume"].tolist())
    spent, volumes = history["cumulative_energy_j"], history["hypervolume"]
    assert energy_to_reach(spent, volumes, 3.4) == 15.5
    assert math.isnan(energy_to_reach(spent, volumes, 3.5))


def test_hypervolume_history_of_an_empty_or_failed_study() -> None:
    assert hypervolume_history(_study([])).empty
    failed = hypervolume_history(_study([{"state": State.FAIL, "attrs": {"energy_j": 1.0}}]))
    assert failed["hypervolume"].tolist() == [0.0]


def _curve(accuracies, energies=None):
    energies = energies or [None] * len(accuracies)
    return [{"epoch": i + 1, "val_accuracy": a, "energy_j": e, "train_loss": 1.0}
            for i, (a, e) in enumerate(zip(accuracies, energies))]


def test_learning_curves_mark_early_stopped_trials() -> None:
    study = _study([
        {"values": [0.7, 3.0], "attrs": {"training": {
            "learning_curve": _curve([0.5, 0.7], [1.0, 3.0]), "stop_reason": "completed"}}},
        {"values": [0.4, 1.0], "attrs": {"training": {
            "learning_curve": _curve([0.4]), "stop_reason": "energy_budget"}}},
        {"state": State.PRUNED, "attrs": {"training": {"learning_curve": _curve([0.2])}}},
        {"values": [0.1, 1.0]},  # not the built-in trainer: no curve
        {"state": State.FAIL, "attrs": {"training": {"learning_curve": []}}},
    ])
    curves = learning_curves(study)
    assert curves["trial"].tolist() == [0, 0, 1, 2]
    assert curves["epoch"].tolist() == [1, 2, 1, 1]
    assert curves["early_stopped"].tolist() == [False, False, True, True]
    assert curves["energy_j"].tolist()[:2] == [1.0, 3.0] and curves["energy_j"][2:].isna().all()
    assert curves["state"].tolist()[-1] == "PRUNED"
    assert learning_curves(_study([])).empty


def test_parameter_effects_lists_objectives_params_and_log_scales() -> None:
    study = _study([{"values": [0.5, 4.0], "width": 0.5}, {"values": [0.8, 6.0], "width": 2.0},
                    {"state": State.FAIL}])
    effects = parameter_effects(study)
    assert effects.objectives == ["accuracy", "energy_j"]
    assert effects.params == ["lr", "width"] and effects.log_params == ["lr"]
    assert effects.frame["params_width"].tolist() == [0.5, 2.0]
    assert effects.frame["on_front"].tolist() == [True, True]


def test_figures_draw() -> None:
    study = _study([
        {"values": [0.5, 4.0], "width": 0.5, "attrs": {"energy_j": 4.0, "training": {
            "learning_curve": _curve([0.3, 0.5]), "stop_reason": "completed"}}},
        {"values": [0.8, 6.0], "width": 2.0, "attrs": {"energy_j": 6.0, "training": {
            "learning_curve": _curve([0.8]), "stop_reason": "early_stopping"}}},
    ])
    history = hypervolume_history(study)
    fig = hypervolume_figure({"a": history, "b": history}, "t", target=0.5)
    assert len(fig.data) == 2 and fig.layout.xaxis.title.text.startswith("search energy")
    fig = learning_curves_figure(learning_curves(study), "t")
    assert [t.line.dash for t in fig.data] == ["solid", "dash"]
    fig = parameter_effects_figure(parameter_effects(study), "t")
    assert len(fig.data) == 2 * 2 * 2  # objectives x params x (front, dominated)
    assert set(report_figures(study, color_by="width")) == {
        "pareto", "hypervolume", "learning_curves", "parameters"}


def test_write_report_writes_every_plot_and_saves_them_for_the_dashboard(tmp_path) -> None:
    from optuna_dashboard._custom_plot_data import get_plotly_graph_objects

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "energy_j"])
    study.add_trial(optuna.trial.create_trial(values=[0.5, 1.0], user_attrs={"training": {
        "learning_curve": _curve([0.5]), "stop_reason": "completed"}}))
    paths = write_report(study, tmp_path / "r", png=False)
    assert {p.name for p in set(paths.values())} == {
        "front.csv", "front.json", "hypervolume.csv", "pareto.html", "hypervolume.html",
        "learning_curves.html", "index.html", "plotly.min.js"}
    # One trial: the reference lies 10 % of its energy beyond it, so it has hypervolume.
    assert pd.read_csv(paths["hypervolume_csv"])["hypervolume"].tolist() == pytest.approx(
        [0.5 * 0.1])
    saved = get_plotly_graph_objects(storage.get_study_system_attrs(study._study_id))
    assert set(saved) == {"ecotune-pareto", "ecotune-hypervolume", "ecotune-learning-curves"}
    write_report(study, tmp_path / "r", png=False)  # saving again replaces, never adds
    saved = get_plotly_graph_objects(storage.get_study_system_attrs(study._study_id))
    assert len(saved) == 3


def _random_study(seed: int, directions: list[str], n_trials: int) -> optuna.Study:
    """A study run the Optuna 5 way: integer objectives, constraints set with
    trial.set_constraint, failed and pruned trials mixed in, energy_j recorded."""
    rng = random.Random(seed)
    study = optuna.create_study(directions=directions,
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    study.set_metric_names(["accuracy"] + [f"cost{i}" for i in range(len(directions) - 1)])

    def objective(trial: optuna.Trial) -> list[float]:
        trial.set_user_attr("energy_j", rng.randint(1, 5))
        fate = rng.random()
        if fate < 0.1:
            raise RuntimeError("failed")
        if fate < 0.2:
            raise optuna.TrialPruned()
        if fate < 0.4:
            trial.set_constraint("budget", rng.choice([1.0, 0.0, -2.0]))
        return [float(rng.randint(0, 8)) for _ in directions]

    study.optimize(objective, n_trials=n_trials, catch=(RuntimeError,))
    return study


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("directions", [["maximize", "minimize"],
                                        ["maximize", "minimize", "minimize"]])
def test_history_equals_brute_force_hypervolume_of_every_prefix(
        seed: int, directions: list[str]) -> None:
    study = _random_study(seed, directions, 40 if len(directions) == 2 else 25)
    maximize = [d == "maximize" for d in directions]
    reference = [-1 if mx else 9 for mx in maximize]  # integers: grid counting is exact
    history = hypervolume_history(study, reference=reference)
    finished = [t for t in study.trials if t.state != State.RUNNING]
    assert history["trial"].tolist() == [t.number for t in finished]
    counted: list[list[float]] = []
    for t, volume in zip(finished, history["hypervolume"]):
        # Feasible by hand: Optuna 5 stores set_constraint under "constraints:<name>".
        constraints = [v for k, v in t.system_attrs.items() if k.startswith("constraints:")]
        if t.state == State.COMPLETE and all(c <= 0 for c in constraints):
            counted.append([int(v) for v in t.values])
        assert volume == pytest.approx(_brute_force_hypervolume(counted, reference, maximize))
    # And with ecotune's own reference, against the from-scratch computation.
    default = hypervolume_history(study)
    points = [t.values for t in finished if t.state == State.COMPLETE
              and all(c <= 0 for c in t.constraints.values())]
    own = reference_point(points, study.metric_names, maximize)
    assert default["hypervolume"].iloc[-1] == pytest.approx(hypervolume(points, own, maximize))


@pytest.mark.parametrize("seed", range(4))
def test_every_trial_that_enters_the_front_adds_hypervolume(seed: int) -> None:
    study = _random_study(seed, ["maximize", "minimize"], 60)
    history = hypervolume_history(study).set_index("trial")["hypervolume"]
    earlier: list[list[float]] = []
    previous = 0.0
    for t in study.trials:
        if t.state == State.RUNNING:
            continue
        enters = (t.state == State.COMPLETE and all(c <= 0 for c in t.constraints.values())
                  and not any(p[0] >= t.values[0] and p[1] <= t.values[1] for p in earlier))
        if enters:
            assert history[t.number] > previous, f"trial {t.number} {t.values} added nothing"
        else:
            assert history[t.number] == previous
        if t.state == State.COMPLETE and all(c <= 0 for c in t.constraints.values()):
            earlier.append(t.values)
        previous = history[t.number]


def test_the_most_accurate_and_most_expensive_trial_adds_hypervolume() -> None:
    # The case that showed the old reference (the worst value seen) hid the extreme trial.
    study = _study([{"values": [0.5, 4.0]}, {"values": [0.6, 1.0]}, {"values": [0.8, 6.0]}])
    assert hypervolume_history(study)["hypervolume"].is_monotonic_increasing
    assert hypervolume_history(study)["hypervolume"].diff().iloc[-1] > 0


def _array(data) -> list:
    """A figure's data array as stored in JSON: a list, or plotly's base64 typed array."""
    if isinstance(data, dict) and "bdata" in data:
        import base64

        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return list(data)


def test_a_5000_trial_study_reports(tmp_path) -> None:
    from optuna_dashboard._custom_plot_data import get_plotly_graph_objects

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "energy_j"])
    rng = np.random.default_rng(0)
    width = optuna.distributions.FloatDistribution(0.25, 2.0)
    trials = []
    for i in range(5000):
        accuracy, energy_j = float(rng.random()), float(rng.random() * 10)
        state = State.FAIL if i % 50 == 7 else State.COMPLETE
        trials.append(optuna.trial.create_trial(
            state=state, values=[accuracy, energy_j] if state == State.COMPLETE else None,
            params={"width": 0.25 + 1.75 * accuracy}, distributions={"width": width},
            user_attrs={"energy_j": energy_j, "training": {
                "learning_curve": _curve([accuracy / 2, accuracy], [energy_j / 2, energy_j]),
                "stop_reason": "completed"}},
            constraints={"budget": energy_j - 9.5}))
    study.add_trials(trials)
    paths = write_report(study, tmp_path / "big", png=False)
    history = pd.read_csv(paths["hypervolume_csv"])
    assert len(history) == 5000
    feasible = [t.values for t in study.trials
                if t.state == State.COMPLETE and t.constraints["budget"] <= 0]
    reference = reference_point(feasible, ["accuracy", "energy_j"], [True, False])
    assert history["hypervolume"].iloc[-1] == pytest.approx(
        hypervolume(feasible, reference, [True, False]))
    front = pd.read_csv(paths["csv"])
    saved = get_plotly_graph_objects(storage.get_study_system_attrs(study._study_id))
    pareto = plotly.io.from_json(saved["ecotune-pareto"])
    drawn_front = next(t for t in pareto.data if t.name == "Pareto front")
    assert sorted(_array(drawn_front.x)) == sorted(front["energy_j"])  # the front in full
    # The hypervolume figure and hypervolume.csv come from the same history.
    drawn = plotly.io.from_json(saved["ecotune-hypervolume"]).data[0]
    assert _array(drawn.y)[-1] == pytest.approx(history["hypervolume"].iloc[-1])


@pytest.mark.parametrize("where", ["sqlite", "memory"])
def test_dashboard_figures_are_saved_at_once_and_a_shorter_one_replaces_a_longer(
        where: str, tmp_path) -> None:
    """The figures' chunks go to storage in one transaction on SQLite; what
    optuna-dashboard reads back is each figure as saved, also after a shorter one
    replaced a longer one (its extra chunks cleared, as optuna-dashboard itself does)."""
    import plotly.graph_objects as go
    from optuna_dashboard._custom_plot_data import get_plotly_graph_objects
    from sqlalchemy import event

    from ecotune.report.export import save_to_dashboard
    from ecotune.storage import open_storage

    storage = (open_storage(f"sqlite:///{tmp_path}/d.db") if where == "sqlite"
               else optuna.storages.InMemoryStorage())
    study = optuna.create_study(storage=storage)
    commits: list[int] = []
    if where == "sqlite":
        event.listen(storage.engine, "commit", lambda _conn: commits.append(1))
    big = go.Figure(go.Scatter(x=list(range(3000)), y=list(range(3000))))
    small = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    assert save_to_dashboard(study, {"pareto": big, "other": small}) == [
        "ecotune-pareto", "ecotune-other"]
    if where == "sqlite":
        assert len(commits) <= 3  # the chunks (more than 10 here) in one write
    stored = storage.get_study_system_attrs(study._study_id)
    assert sum(k.startswith("dashboard:plot_data:ecotune-pareto:") for k in stored) > 10
    saved = get_plotly_graph_objects(stored)
    assert saved["ecotune-pareto"] == big.to_json()
    save_to_dashboard(study, {"pareto": small})
    saved = get_plotly_graph_objects(storage.get_study_system_attrs(study._study_id))
    assert saved["ecotune-pareto"] == small.to_json()
    assert saved["ecotune-other"] == small.to_json()


def test_a_long_front_draws_an_even_sample_of_its_learning_curves() -> None:
    from ecotune.report.plots import MAX_FRONT_CURVES

    rows = [{"trial": t, "epoch": e, "val_accuracy": 0.1 * e, "energy_j": 1.0 * e,
             "early_stopped": False, "stop_reason": "completed"}
            for t in range(300) for e in (1, 2)]
    front = list(range(0, 300, 2))  # 150 front trials
    fig = learning_curves_figure(pd.DataFrame(rows), "t", front_trials=front)
    drawn_front = {t.name for t in fig.data if "Pareto front" in t.name}
    assert len(drawn_front) == MAX_FRONT_CURVES
    assert {"trial 0 (Pareto front)", "trial 298 (Pareto front)"} <= drawn_front
    assert f"{MAX_FRONT_CURVES} of the front's 150" in fig.layout.title.text


def test_the_terminal_shows_an_even_sample_of_a_long_front() -> None:
    import io

    from rich.console import Console

    from ecotune.cli._common import MAX_FRONT_ROWS, _print_front

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "energy_j"])
    for i in range(60):  # every trial on the front: more accurate, more energy
        study.add_trial(optuna.trial.create_trial(values=[i / 100, float(i + 1)]))
    out = io.StringIO()
    _print_front(study, Console(file=out, width=200))
    text = out.getvalue()
    assert f"{MAX_FRONT_ROWS} of 60 front trials shown" in text
    assert sum(line.startswith("│") for line in text.splitlines()) == MAX_FRONT_ROWS
