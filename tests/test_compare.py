"""`ecotune compare` and `ecotune dashboard`, run as real processes."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pandas as pd
import pytest

from ecotune.comparison import comparison_runs
from ecotune.spec import SpecError
from tests import forkserver
from tests.conftest import free_port as _free_port
from tests.conftest import get_json as _get_json
from tests.conftest import run_cli, tiny_study_toml

STUDY = tiny_study_toml("cmp", study=("seed = 0",), training=("epochs = 1", "batch_size = 128"))


def test_comparison_runs_validates_before_running() -> None:
    spec = {"study": {"name": "x", "sampler": {"name": "tpe",
                                                "options": {"n_startup_trials": 2}}},
            "search_space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1}}}
    runs = comparison_runs(spec, ["random", "skopt"], n_trials=4, repeats=2)
    assert [(s, r, x.study.name, x.study.seed, x.study.n_trials) for s, r, x in runs] == [
        ("random", 0, "x-random-r0", 0, 4), ("random", 1, "x-random-r1", 1, 4),
        ("skopt", 0, "x-skopt-r0", 0, 4), ("skopt", 1, "x-skopt-r1", 1, 4)]
    assert all(x.study.sampler.options == {} for _, _, x in runs)  # tpe's options dropped
    with pytest.raises(SpecError, match="sampler 'grid': .*needs `grid = \\[...\\]`"):
        comparison_runs(spec, ["random", "grid"], n_trials=4)
    with pytest.raises(ValueError, match="unknown sampler 'anneal'"):
        comparison_runs(spec, ["anneal"], n_trials=4)
    with pytest.raises(ValueError, match="n_trials must be >= 1"):
        comparison_runs(spec, ["random"], n_trials=0)
    with pytest.raises(ValueError, match="listed twice"):
        comparison_runs(spec, ["random", "random"], n_trials=1)


@pytest.mark.slow
def test_compare_command(tmp_path: Path, capsys) -> None:
    (tmp_path / "cmp.toml").write_text(STUDY)
    result = run_cli("compare", "cmp.toml", "--samplers", "random,skopt", "--n-trials", "3",
                     "--repeats", "2", "--out", "out", "--no-png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "samplers compared" in result.stdout
    names = {s.study_name for s in optuna.get_all_study_summaries("sqlite:///ecotune.db")}
    assert names == {"cmp-random-r0", "cmp-random-r1", "cmp-skopt-r0", "cmp-skopt-r1"}
    table = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert table["sampler"].tolist() == ["random", "skopt"]
    assert (table["runs"] == 2).all() and (table["trials"] == 3).all()
    assert ((table["hypervolume_ratio"] > 0) & (table["hypervolume_ratio"] <= 1)).all()
    # The replay's metrics, from the same pareto functions: every level, the log
    # hypervolume difference, and the ratio to random search (random against itself: 1).
    assert {"energy_to_99.5_j", "reached_99.5", "final_log_hv_difference",
            "energy_to_99_vs_random_bound"} <= set(table.columns)
    assert (table["final_log_hv_difference"] <= 0).all()
    assert table.set_index("sampler").loc["random", "energy_to_99_vs_random"] == 1.0
    assert "99 % vs random" in result.stdout
    histories = pd.read_csv(tmp_path / "out" / "compare-hypervolume.csv")
    assert len(histories) == 12 and (tmp_path / "out" / "compare.html").is_file()
    # Running again would mix old and new trials: refused, nothing changed (in-process,
    # the same main() the command runs).
    from ecotune.cli import main

    before = (tmp_path / "ecotune.db").read_bytes()
    capsys.readouterr()
    assert main(["compare", "cmp.toml", "--samplers", "random", "--n-trials", "1"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "ecotune.db").read_bytes() == before


@pytest.mark.parametrize(("args", "message"), [
    (["--samplers", "random,grid"], "the grid sampler needs `grid = [...]`"),
    (["--samplers", "random,anneal"], "unknown sampler 'anneal'"),
    (["--repeats", "0"], "repeats must be >= 1"),
])
def test_compare_bad_input_exits_2(tmp_path: Path, args: list[str], message: str,
                                   capsys) -> None:
    """In-process (the same main() the command runs; test_cli.py runs a real process)."""
    from ecotune.cli import main

    (tmp_path / "cmp.toml").write_text(STUDY)
    assert main(["compare", "cmp.toml", "--n-trials", "2", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "ecotune.db").exists()


@contextlib.contextmanager
def _dashboard(cwd: Path, storage: str) -> Iterator[tuple[str, dict]]:
    """A running ``ecotune dashboard`` on a free port: its base URL and its study list,
    once it answers (polled, up to 60 s: a loaded 2-core machine starts it slowly)."""
    port = _free_port()
    server = forkserver.start(
        [sys.executable, "-m", "ecotune", "dashboard", "--storage", storage,
         "--port", str(port)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                studies = _get_json(f"{base}/api/studies")
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                time.sleep(0.1)
        else:
            pytest.fail("the dashboard did not answer within 60 s")
        yield base, studies
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_dashboard_serves_the_study_with_ecotunes_plots(tmp_path: Path) -> None:
    from ecotune import create_study, write_report

    study = create_study("dash", storage="sqlite:///dash.db", sampler="random", seed=0)
    for accuracy, energy_j in [(0.5, 1.0), (0.8, 3.0)]:
        study.add_trial(optuna.trial.create_trial(values=[accuracy, energy_j]))
    write_report(study, tmp_path / "report", png=False)
    with _dashboard(tmp_path, "sqlite:///dash.db") as (base, studies):
        [summary] = studies["study_summaries"]
        assert summary["study_name"] == "dash"
        detail = _get_json(f"{base}/api/studies/{summary['study_id']}")
        assert detail["objective_names"] == ["accuracy", "energy_j"]
        ids = {g["id"] for g in detail["plotly_graph_objects"]}
        assert {"ecotune-pareto", "ecotune-hypervolume"} <= ids
        # The artifact folder is made at the first upload, not when the dashboard starts.
        assert not (tmp_path / "ecotune-artifacts").exists()


def test_dashboard_lists_the_constraints_of_an_infeasible_trial(tmp_path: Path) -> None:
    """Optuna 5 stores each constraint under ``constraints:<name>``; optuna-dashboard 0.21
    reads only the legacy ``constraints`` list: ``ecotune dashboard`` serves both, while
    the stored study (and so Optuna's feasibility) is left as Optuna wrote it."""
    study = optuna.create_study(study_name="feas", storage="sqlite:///feas.db",
                                directions=["maximize", "minimize"])
    for accuracy, energy_j, over_j in [(0.9, 8.0, 3.0), (0.7, 2.0, -3.0)]:
        trial = study.ask()
        trial.set_constraint("trial_energy_j", over_j)
        trial.set_constraint("inference_energy_pj", -1.0)
        study.tell(trial, [accuracy, energy_j])
    stored = study.trials[0].system_attrs
    assert "constraints" not in stored and stored["constraints:trial_energy_j"] == 3.0
    assert [t.number for t in study.best_trials] == [1]  # the over-budget trial is not best
    with _dashboard(tmp_path, "sqlite:///feas.db") as (base, studies):
        [summary] = studies["study_summaries"]
        detail = _get_json(f"{base}/api/studies/{summary['study_id']}")
        constraints = {t["number"]: t["constraints"] for t in detail["trials"]}
        # In name order: inference_energy_pj, trial_energy_j.
        assert constraints == {0: [-1.0, 3.0], 1: [-1.0, -3.0]}
    # Nothing was written: the study is as Optuna stored it.
    assert "constraints" not in optuna.load_study(
        study_name="feas", storage="sqlite:///feas.db").trials[0].system_attrs


def test_dashboard_bad_input(tmp_path: Path) -> None:
    missing = run_cli("dashboard", "--storage", "sqlite:///missing.db", cwd=tmp_path)
    assert missing.returncode == 2 and "no such database file" in missing.stderr
    assert not (tmp_path / "missing.db").exists()
    assert "--port must be" in run_cli("dashboard", "--port", "0", cwd=tmp_path).stderr
