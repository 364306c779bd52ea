"""The report as a user meets it: the written index.html and plot pages read back (plots'
data, axes and hover text), any Optuna study, studies with nothing to show, and PNGs
drawn by a real Chromium."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import optuna
import pandas as pd
import plotly.graph_objects as go
import pytest

from ecotune.report import NothingToReport, ReportError, check_reportable, write_report
from tests.conftest import require_component

State = optuna.trial.TrialState


def plotted_figures(html: str) -> dict[str, dict]:
    """The figures a written page draws, by div id: ``{"data": [...], "layout": {...}}``,
    decoded from its ``Plotly.newPlot("id", data, layout, config)`` calls."""
    decoder = json.JSONDecoder()
    figures = {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', html):
        data, end = decoder.raw_decode(html, match.end())
        layout, _ = decoder.raw_decode(html, html.index("{", end))
        figures[match.group(1)] = {"data": data, "layout": layout}
    return figures


def _curve(accuracies: list[float]) -> list[dict]:
    return [{"epoch": i + 1, "val_accuracy": a, "energy_j": float(i + 1)}
            for i, a in enumerate(accuracies)]


def _ecotune_like_study(energies: list[float], curves: bool = True) -> optuna.Study:
    """Trials as ecotune's trainer records them: energy attributes, learning curves."""
    study = optuna.create_study(study_name="eco", directions=["maximize", "minimize"])
    study.set_metric_names(["accuracy", "energy_j"])
    width = optuna.distributions.FloatDistribution(0.25, 2.0)
    for i, energy_j in enumerate(energies):
        accuracy = 0.5 + 0.4 * i / max(len(energies) - 1, 1)
        attrs = {"energy_j": energy_j, "energy_meter": "codecarbon", "energy_is_estimate": True}
        if curves:
            attrs["training"] = {"learning_curve": _curve([accuracy - 0.1, accuracy]),
                                 "stop_reason": "completed"}
        study.add_trial(optuna.trial.create_trial(
            values=[accuracy, energy_j], params={"width": 0.25 + 0.1 * i},
            distributions={"width": width}, user_attrs=attrs))
    return study


def test_index_page_shows_every_plot_and_the_front_with_one_plotlyjs(tmp_path: Path) -> None:
    # Energies 2..9 J, one trial dominated: (0.7, 9.0) is worse than (0.9, 5.0) in both.
    study = _ecotune_like_study([2.0, 3.0, 9.0, 5.0])
    paths = write_report(study, tmp_path / "r", png=False, dashboard=False)
    page = paths["index"].read_text()
    figures = plotted_figures(page)
    assert set(figures) == {f"plot-{n}" for n in
                            ("pareto", "hypervolume", "learning_curves", "parameters")}
    front = pd.read_csv(paths["csv"])
    assert sorted(front["trial"]) == [0, 1, 3]
    table = page[page.index("<table"):page.index("</table>")]
    assert [int(t) for t in re.findall(r"<tr><td>(\d+)</td>", table)] == front["trial"].tolist()
    # plotly.js once in the folder, loaded by every page from there; no other big file.
    big = [p.name for p in (tmp_path / "r").iterdir() if p.stat().st_size > 1_000_000]
    assert big == ["plotly.min.js"]
    for html in (tmp_path / "r").glob("*.html"):
        text = html.read_text()
        assert re.search(r'<script [^>]*src="plotly.min.js"', text)
        assert not re.search(r'<script [^>]*src="http', text)  # nothing from the internet
    assert json.loads(paths["json"].read_text())["not_drawn"] == {}


def test_plots_answer_the_first_question(tmp_path: Path) -> None:
    study = _ecotune_like_study([2.0, 3.0, 9.0, 5.0])
    paths = write_report(study, tmp_path / "r", png=False, dashboard=False)
    figures = plotted_figures(paths["index"].read_text())
    front = set(pd.read_csv(paths["csv"])["trial"])

    # Pareto hover: the trial's objective values, with units, before its parameters.
    pareto = figures["plot-pareto"]
    [front_trace] = [t for t in pareto["data"] if t.get("name") == "Pareto front"]
    lines = front_trace["text"][0].split("<br>")
    assert re.fullmatch(r"<b>trial \d+</b>", lines[0])
    assert re.fullmatch(r"<b>accuracy = [\d.]+</b>", lines[1])
    assert re.fullmatch(r"<b>energy_j = [\d.]+ J</b>", lines[2])
    assert lines[3].startswith("width = ")

    # Hypervolume: units on both axes, and whether the energy is an estimate.
    layout = figures["plot-hypervolume"]["layout"]
    assert layout["xaxis"]["title"]["text"] == (
        "search energy spent (training + test evaluation), cumulative (J) [estimate, codecarbon]")
    assert layout["yaxis"]["title"]["text"] == "hypervolume of the front (accuracy x J)"

    # Learning curves: each front trial named in the legend, the others grouped apart.
    curves = figures["plot-learning_curves"]["data"]
    named = {t["name"] for t in curves if t.get("showlegend", True)}
    assert named == {f"trial {n} (Pareto front)" for n in front} | {"other trials"}
    colours = {t["line"]["color"] for t in curves if "Pareto front" in t["name"]}
    assert len(colours) == len(front)  # one colour each, none grey
    assert "#9aa0a6" not in colours

    # Parameters: no fixed pixel size, so it fills optuna-dashboard's card.
    parameters = figures["plot-parameters"]["layout"]
    assert "width" not in parameters and "height" not in parameters


@pytest.mark.parametrize(("energies", "scale"), [([1.0, 2.0, 40.0], "log"),
                                                 ([1.0, 2.0, 29.0], "linear")])
def test_an_energy_axis_is_logarithmic_beyond_a_span_of_30(energies, scale,
                                                             tmp_path: Path) -> None:
    study = _ecotune_like_study(energies, curves=False)
    paths = write_report(study, tmp_path / "r", png=False, dashboard=False)
    figures = plotted_figures(paths["index"].read_text())
    assert figures["plot-pareto"]["layout"]["xaxis"]["type"] == scale
    assert figures["plot-pareto"]["layout"]["yaxis"]["type"] == "linear"  # accuracy
    energy_rows = [a for k, a in figures["plot-parameters"]["layout"].items()
                   if k.startswith("yaxis") and a.get("type") == scale]
    assert energy_rows  # the energy_j row of the parameters grid


@pytest.mark.parametrize("names", [None, ["acc", "energy_kwh"]])
def test_a_plain_optuna_study_reports_its_objectives(names, tmp_path: Path) -> None:
    study = optuna.create_study(study_name="plain", directions=["maximize", "minimize"])
    if names:
        study.set_metric_names(names)
    x = optuna.distributions.FloatDistribution(0.0, 1.0)
    for value, energy in [(0.2, 1.0), (0.9, 4.0), (0.5, 2.0), (0.4, 3.0)]:
        study.add_trial(optuna.trial.create_trial(values=[value, energy], params={"x": value},
                                                  distributions={"x": x}))
    accuracy, energy = names or ["objective_0", "objective_1"]
    assert check_reportable(study) == energy
    paths = write_report(study, tmp_path / "r", png=False, dashboard=False)
    front = pd.read_csv(paths["csv"])
    assert front[energy].tolist() == [4.0, 2.0, 1.0]
    figures = plotted_figures(paths["index"].read_text())
    assert figures["plot-pareto"]["layout"]["xaxis"]["title"]["text"].startswith(energy)
    # The energy objective stands in for the energy_j attribute the trials lack.
    history = pd.read_csv(paths["hypervolume_csv"])
    assert history["cumulative_energy_j"].tolist() == [1.0, 5.0, 7.0, 10.0]
    hv_axis = figures["plot-hypervolume"]["layout"]["xaxis"]["title"]["text"]
    assert hv_axis == (f"search energy spent (training + test evaluation), cumulative ({energy})"
                       " [meter unknown]")
    document = json.loads(paths["json"].read_text())
    assert list(document["not_drawn"]) == ["learning_curves"]
    assert "no per-epoch data" in document["not_drawn"]["learning_curves"]


def _study_with(states: list[State], names=("accuracy", "energy_j"),
                directions=("maximize", "minimize")) -> optuna.Study:
    study = optuna.create_study(study_name="s", directions=list(directions))
    study.set_metric_names(list(names))
    for i, state in enumerate(states):
        study.add_trial(optuna.trial.create_trial(
            state=state, values=[0.5, 1.0][:len(names)] if state == State.COMPLETE else None,
            user_attrs={"fail_reason": f"boom {i}"} if state == State.FAIL else {}))
    return study


def test_a_study_with_no_complete_trial_writes_nothing(tmp_path: Path) -> None:
    study = _study_with([State.PRUNED, State.FAIL, State.FAIL])
    with pytest.raises(NothingToReport, match=r"no complete trial to report \(2 failed, "
                                              r"1 pruned\); first failure: trial 1: boom 1"):
        write_report(study, tmp_path / "r", png=False)
    assert not (tmp_path / "r").exists()
    with pytest.raises(NothingToReport, match=r"\(0 failed, 0 pruned\)$"):
        check_reportable(_study_with([]))


@pytest.mark.parametrize(("names", "directions", "message"), [
    (("accuracy", "latency_ms"), ("maximize", "minimize"),
     "has no energy objective to report (objectives found: accuracy (maximize), "
     "latency_ms (minimize))"),
    (("accuracy", "energy_j"), ("maximize", "maximize"),
     "the energy objective 'energy_j' is maximised, expected minimised (objectives found: "
     "accuracy (maximize), energy_j (maximize))"),
    (("accuracy",), ("maximize",), "objectives found: accuracy (maximize)"),
])
def test_a_study_without_an_energy_objective_to_minimise_is_refused(
        names, directions, message, tmp_path: Path) -> None:
    study = _study_with([State.COMPLETE], names, directions)
    with pytest.raises(ReportError, match=re.escape(message)):
        write_report(study, tmp_path / "r", png=False)
    assert not (tmp_path / "r").exists()


def test_a_png_export_the_browser_fails_once_is_retried_with_a_fresh_one(
        tmp_path: Path, monkeypatch) -> None:
    """kaleido's race on a loaded machine (its tab called before its script loaded)
    closes the browser; the export starts a fresh one and writes the PNG."""
    import kaleido

    from ecotune.report import png_export_available, write_pngs

    require_component(png_export_available(), "Chromium for PNG export")
    real, calls = kaleido.write_fig_from_object_sync, []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("ReferenceError: kaleido_scopes is not defined")
        return real(*args, **kwargs)

    monkeypatch.setattr(kaleido, "write_fig_from_object_sync", fails_once)
    figure = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    write_pngs({tmp_path / "f.png": figure})
    assert len(calls) == 2
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setattr(kaleido, "write_fig_from_object_sync",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("still broken")))
    with pytest.raises(RuntimeError, match="still broken"):  # twice: the error shows
        write_pngs({tmp_path / "g.png": figure})


def test_pngs_with_a_real_browser(tmp_path: Path) -> None:
    from ecotune.report import png_export_available

    require_component(png_export_available(), "Chromium for PNG export")
    study = _ecotune_like_study([2.0, 3.0, 9.0, 5.0])
    paths = write_report(study, tmp_path / "r", png=True, dashboard=False)
    sizes = {}
    for name in ("pareto", "hypervolume", "learning_curves", "parameters"):
        png = paths[f"{name}_png"].read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000  # drawn, not blank
        sizes[name] = struct.unpack(">II", png[16:24])  # the IHDR chunk's width, height
    # The parameters grid (2 objectives x 1 parameter) is sized by its cells.
    assert sizes["pareto"] == (900, 600) and sizes["parameters"] == (900, 700)
