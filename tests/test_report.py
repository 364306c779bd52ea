"""Report data (hypervolume, learning curves, parameter effects) tested thoroughly;
drawing and files smoke-tested."""

from __future__ import annotations

import itertools
import random

import numpy as np
import optuna
import pandas as pd
import pytest

from ecotune.report import (
    energy_to_reach,
    hypervolume,
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


def test_reference_point_is_the_worst_value_with_accuracy_zero() -> None:
    points = [[0.9, 10.0, 3.0], [0.5, 2.0, 7.0]]
    assert reference_point(points, ["accuracy", "energy_j", "f1"], [True, False, True]) == [
        0.0, 10.0, 3.0]
    with pytest.raises(ValueError, match="at least one point"):
        reference_point([], ["accuracy"], [True])


def _study(trials: list[dict]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "energy_j"])
    width = optuna.distributions.FloatDistribution(0.25, 2.0)
    lr = optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    for spec in trials:
        state = spec.get("state", State.COMPLETE)
        study.add_trial(optuna.trial.create_trial(
            state=state, values=spec.get("values") if state == State.COMPLETE else None,
            params={"width": spec.get("width", 1.0), "lr": 1e-3},
            distributions={"width": width, "lr": lr},
            user_attrs=spec.get("attrs", {}), system_attrs=spec.get("system", {})))
    return study


def test_hypervolume_history_counts_the_energy_of_every_finished_trial() -> None:
    study = _study([
        {"values": [0.5, 4.0], "attrs": {"energy_j": 4.0}},
        {"state": State.FAIL, "attrs": {"energy_j": 2.5}},
        {"state": State.PRUNED, "attrs": {"energy_j": 1.5}},
        {"values": [0.8, 6.0], "attrs": {"energy_j": 6.0}},
        {"values": [0.99, 0.5], "system": {"constraints": [1.0]}, "attrs": {"energy_j": 0.5}},
        {"state": State.FAIL},  # no energy recorded: adds 0, shown as NaN
        {"values": [0.6, 1.0]},  # no attribute: the energy_j objective is used
    ])
    history = hypervolume_history(study)
    assert history["trial"].tolist() == list(range(7))
    assert history["cumulative_energy_j"].tolist() == [4.0, 6.5, 8.0, 14.0, 14.5, 14.5, 15.5]
    assert np.isnan(history["energy_j"][5])
    # Reference: accuracy 0, energy 6 (worst of the complete feasible trials).
    assert history["hypervolume"].tolist() == pytest.approx([1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
                                                             3.0])
    other = hypervolume_history(study, reference=[0.0, 10.0])
    assert other["hypervolume"].iloc[-1] == pytest.approx(0.6 * 9 + 0.2 * 4)
    assert energy_to_reach(history, 3.0) == 15.5 and energy_to_reach(history, 3.1) is None


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
    assert pd.read_csv(paths["hypervolume_csv"])["hypervolume"].tolist() == [0.0]
    saved = get_plotly_graph_objects(storage.get_study_system_attrs(study._study_id))
    assert set(saved) == {"ecotune-pareto", "ecotune-hypervolume", "ecotune-learning-curves"}
    write_report(study, tmp_path / "r", png=False)  # saving again replaces, never adds
    saved = get_plotly_graph_objects(storage.get_study_system_attrs(study._study_id))
    assert len(saved) == 3
